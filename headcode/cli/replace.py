"""`headcode replace`: replace a growing fraction of heads by their programs and
measure perplexity (and multiple-choice QA accuracy) at each fraction.

The evaluation text is the corpus's *test* split under the library's recorded split
seed: the programs were fitted on the training split and chosen on validation, so
no figure here comes from text the library has seen. Heads are chosen by a
validation figure the library records (IoU by default; `--measure-heads` estimates
or measures what replacing each head alone costs on the validation split and ranks
by that).
"""

from __future__ import annotations

import itertools
import json
import sys

from headcode.cli.options import add_corpus, add_executor, add_level, add_quiet, cut, executor, positive
from headcode.errors import UserError


def register(subparsers) -> None:
    from headcode.replace.estimate import Method

    p = subparsers.add_parser("replace", help="replace heads by their programs; perplexity and QA per fraction")
    p.add_argument("--library", required=True, metavar="LIB")
    p.add_argument("--model", metavar="M", help="registered name, local path or hub name (default: the library's model)")
    add_corpus(p, from_library=True)
    add_level(p, "full")
    p.add_argument("--max-seqs", type=positive, default=200, metavar="N", help="test sequences at most (200)")
    p.add_argument("--fractions", type=_fractions, default=[0.0, 0.1, 0.25, 0.5, 1.0], metavar="F,...",
                   help="fractions of the model's heads to replace (0,0.1,0.25,0.5,1); 0 is always included")
    p.add_argument("--qa", type=_qa_sets, default=["builtin"], metavar="SET,...",
                   help="question sets: builtin (the default), arc-easy, piqa, sciq, or none")
    p.add_argument("--qa-limit", type=positive, default=200, metavar="N", help="questions per public set (200)")
    p.add_argument("--rank-by", metavar="FIGURE",
                   help="the library's validation figure that ranks heads: kl, kl_estimate or ppl_increase (lower "
                        "first; the default when the library records them, in that order), iou (the default otherwise), jsd, "
                        "or any other it records")
    p.add_argument("--measure-heads", metavar="OUT.lib",
                   help="first find what replacing each head alone costs on the validation split (the KL of "
                        "the predictions), write the library with it to OUT.lib, and rank by it")
    p.add_argument("--effects", choices=[m.value for m in Method], default=Method.ESTIMATE.value,
                   help="with --measure-heads: estimate (the default) records kl_estimate, a second-order "
                        "estimate of every head at once (one forward and --samples backward passes); exact "
                        "records kl and ppl_increase, each head run alone (about half a forward per head)")
    p.add_argument("--samples", type=positive, metavar="S",
                   help="with --effects estimate: sampled backward passes per batch (default 8)")
    p.add_argument("--heads", metavar="L0.H1,...",
                   help="with --measure-heads: measure only these heads (the others keep what the library "
                        "records), e.g. after `headcode library edit`")
    p.add_argument("--validation-seqs", type=positive, default=32, metavar="N",
                   help="validation sequences for --measure-heads, at most (32)")
    p.add_argument("--batch-size", type=positive, default=8, metavar="B", help="sequences per forward (8)")
    p.add_argument("--force", action="store_true", help="attach even if the model's fingerprint differs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--png", metavar="OUT.png", help="write a plot of perplexity against the fraction replaced")
    add_executor(p, "--measure-heads")
    add_quiet(p)
    p.set_defaults(func=cmd_replace)


def _fractions(text: str) -> list[float]:
    import argparse

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    bad = [v for v in values if not 0 <= v <= 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"fractions must be numbers from 0 to 1, got {text!r}")
    return values


def _qa_sets(text: str) -> list[str]:
    import argparse

    from headcode.replace.qa import NAMES

    names = [x.strip() for x in text.split(",") if x.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown QA set {unknown[0]!r}; use {', '.join(NAMES)} or none")
    return names


def cmd_replace(args) -> int:
    from headcode.executor import Kind

    if args.executor.kind is not Kind.LOCAL and not args.measure_heads:
        raise UserError(f"--executor {args.executor} runs --measure-heads; give --measure-heads OUT.lib too")
    from headcode.replace.estimate import Method

    if args.executor.kind is not Kind.LOCAL and Method(args.effects) is not Method.EXACT:
        # The estimate's cost does not grow with the heads (one forward, a few backward
        # passes): there is nothing to shard, so asking for Ray is a mistake to say.
        raise UserError(f"--executor {args.executor} shards the exact measurement of --measure-heads; add "
                        "--effects exact (the estimate, the default, runs in this process)")
    with executor(args) as ex:
        return _replace(args, ex)


def _replace(args, ex) -> int:
    from headcode.library import Level, Library
    from headcode.loaders.corpora import SplitSpec, check_corpus
    from headcode.loaders.models import load_model
    from headcode.replace import choose_heads, estimate, measure, qa, sharded
    from headcode.replace.attach import default_rank
    from headcode.replace.estimate import SAMPLES, Method

    lib = Library.load(args.library)
    level = Level(args.level)
    recorded = SplitSpec.from_record(lib.split)
    spec = cut(args, base=recorded, train=0, validation=args.validation_seqs, test=args.max_seqs)
    differ = [f"{k} {getattr(spec, k)!r} (library: {getattr(recorded, k)!r})" for k in ("shape", "max_len",
              "one_per_line", "seed") if getattr(spec, k) != getattr(recorded, k)]
    if spec.corpus == recorded.corpus and differ:
        print(f"headcode: warning: the corpus is cut differently from the library's record ({', '.join(differ)}); "
              "its test split may hold text the programs were fitted on", file=sys.stderr)
    if args.png:
        _check_png(args.png)
    if args.heads is not None and not args.measure_heads:
        raise UserError("--heads chooses the heads --measure-heads measures; give --measure-heads OUT.lib too")
    method = Method(args.effects)
    if method is not Method.ESTIMATE and args.samples is not None:
        raise UserError("--samples is for --effects estimate")
    measured = lib
    if args.measure_heads:
        Library.check_target(args.measure_heads)
        if args.heads is not None:
            from headcode.heads import parse_heads

            wanted = set(parse_heads(args.heads, lib.model.num_layers, lib.model.num_heads))
            if missing := sorted(str(h) for h in wanted if h not in lib or level not in lib[h].levels):
                raise UserError(f"--heads: {args.library} has no {level.value} program for {', '.join(missing)}")
            measured = lib.replace(heads=[lib[h] for h in lib if h in wanted])
    check_corpus(spec.corpus)  # the named or the library's: before the slow model load
    loaded = load_model(args.model or lib.model.name)
    tables = _tables(loaded, spec, "test")
    say = None if args.quiet or args.json else (lambda text: print(text, file=sys.stderr))
    if args.measure_heads:
        validation = _tables(loaded, spec, "validation")
        if method is Method.ESTIMATE:
            effects = estimate.head_effects_estimate(
                loaded.model, loaded.tokenizer, measured, validation, level=level, samples=args.samples or SAMPLES,
                batch_size=args.batch_size, force=args.force, progress=not args.quiet)
        else:
            effects = sharded.head_effects(ex, loaded, measured, validation, level=level, batch_size=args.batch_size,
                                           force=args.force, progress=not args.quiet)
        lib = measure.with_effects(lib, effects, level)
        lib.save(args.measure_heads)
        figures = " and ".join(sorted({k for e in effects.values() for k in e}))
        print(f"headcode: wrote {args.measure_heads}: validation {figures} of {len(effects)} heads' "
              f"{level.value} programs on {len(validation)} validation sequences", file=sys.stderr)
    sets, skipped = {}, {}
    for name in args.qa:
        try:
            sets[name] = qa.load(name, args.qa_limit)
        except qa.Unavailable as why:
            skipped[name] = str(why)
            print(f"headcode: note: QA set {name} skipped: {why}", file=sys.stderr)
    rank_by = args.rank_by or default_rank(lib, level)
    for fraction in args.fractions:  # refuse a bad ranking before the slow part
        choose_heads(lib, loaded.n_layers * loaded.n_heads, fraction=fraction, rank_by=rank_by, level=level)
    points = measure.curve(loaded.model, loaded.tokenizer, lib, tables, args.fractions, level=level, qa=sets,
                           add_special_tokens=loaded.add_special_tokens, batch_size=args.batch_size,
                           force=args.force, rank_by=rank_by, progress=say)
    report = {
        "model": loaded.name, "library": str(args.library), "library_heads": len(lib), "level": level.value,
        "corpus": spec.corpus, "split": "test", "seed": spec.seed, "shape": spec.shape, "max_len": spec.max_len,
        "sequences": len(tables), "tokens": points[0]["tokens"],
        "heads_in_model": loaded.n_layers * loaded.n_heads, "rank_by": rank_by, "qa_skipped": skipped, "points": points,
    }
    if args.png:
        _plot(points, f"{loaded.name}: {lib.model.name} library ({level.value}) on {spec.corpus} (test split)",
              args.png)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print(report)
        if args.png:
            print(f"wrote {args.png}")
    return 0


def _tables(loaded, spec, split: str) -> list:
    """The token tables of one split of the cut (sequences of at least 2 tokens)."""
    stream = (seq.table for seq in spec.stream(loaded.tokenizer, loaded.add_special_tokens, splits=[split])
              if len(seq.table) >= 2)
    tables = list(itertools.islice(stream, spec.counts[split]))
    if not tables:
        raise UserError(f"{spec.corpus}: no {split}-split sequences of at least 2 tokens (seed {spec.seed})")
    return tables


def _check_png(path: str) -> None:
    from headcode.fileio import check_writable

    check_writable(path, what="plot")


def _print(report: dict) -> None:
    print(f"{report['model']}: {report['sequences']} test sequences of {report['corpus']} "
          f"(seed {report['seed']}), {report['tokens']} predicted tokens; "
          f"library {report['library']} explains {report['library_heads']} of {report['heads_in_model']} heads")
    names = sorted({n for p in report["points"] for n in p.get("qa", {})})
    header = f"{'fraction':>8} {'heads':>5} {'perplexity':>10} {'increase':>8}"
    print(header + "".join(f"  {n + ' acc/norm':>18}" for n in names))
    for p in report["points"]:
        row = f"{p['fraction']:8.3g} {p['heads_replaced']:5d} {p['perplexity']:10.3f} {p['increase']:+8.1%}"
        for n in names:
            a = p["qa"][n]
            row += f"  {a['accuracy']:8.3f}/{a['accuracy_norm']:.3f}".rjust(20)
        print(row)
    for p in report["points"]:
        if p["heads"]:
            shown = ", ".join(f"L{l}.H{h}" for l, h in p["heads"][:12])
            more = f" and {len(p['heads']) - 12} more" if len(p["heads"]) > 12 else ""
            print(f"replaced at {p['fraction']:g} (best validation {report['rank_by']} first): {shown}{more}")
    for name, why in report["qa_skipped"].items():
        print(f"QA {name} skipped: {why}")


def _plot(points: list[dict], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from headcode.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot([p["fraction"] for p in points], [p["perplexity"] for p in points], marker="o")
    for p in points:
        ax.annotate(f"{p['perplexity']:.1f}", (p["fraction"], p["perplexity"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("fraction of heads replaced by programs")
    ax.set_ylabel("perplexity (token-weighted)")
    values = [p["perplexity"] for p in points]
    if max(values) > 3 * min(values):  # a curve that explodes stays readable on a log scale
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
