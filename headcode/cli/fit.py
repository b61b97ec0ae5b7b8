"""`headcode fit SKETCH --head L3.H2`: fill a hand-written sketch's holes for heads of
a model and say how well the filled program explains each, next to the head's
program in the bundled library and the baselines (docs/tutorial.md walks through it)."""

from __future__ import annotations

import json
import sys

from headcode.cli.options import add_corpus, add_model, add_quiet, cut, positive
from headcode.errors import UserError
from headcode.fileio import check_writable, write_text


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="fill a sketch's holes (?) for heads and score the result")
    p.add_argument("sketch", metavar="SKETCH_OR_FILE", help="a sketch (softmax(?*bos + ?*key.punct)) or a file holding one")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--head", "--heads", dest="heads", metavar="L3.H2,...", help="the heads to fit it to")
    which.add_argument("--all-heads", action="store_true", help="every head of the model, ranked by validation IoU")
    add_model(p)
    add_corpus(p)
    p.add_argument("--capture", metavar="DIR", help="read attention from a `headcode capture` directory "
                                                    "instead of running the model (its splits are used)")
    p.add_argument("--train-seqs", type=positive, default=48, metavar="N", help="training sequences (48)")
    p.add_argument("--validation-seqs", type=positive, default=40, metavar="N", help="validation sequences (40)")
    p.add_argument("--test-seqs", type=positive, default=40, metavar="N", help="test sequences (40)")
    p.add_argument("--top", type=positive, default=20, metavar="K", help="with --all-heads, rows shown (20)")
    p.add_argument("--out", metavar="FILE.hc", help="also write the filled programs, one definition named after "
                                                    "each head (`L3.H2 = ...`), for `library edit --program FILE`")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_quiet(p)
    p.set_defaults(func=cmd_fit)


def cmd_fit(args) -> int:
    from headcode import dsl
    from headcode.cli.program_option import describe as describe_given
    from headcode.cli.program_option import resolve
    from headcode.heads import Head, parse_heads
    from headcode.synth.fit import fit

    # A bad sketch fails before the model loads; the heads are checked against it below.
    asked = (Head(0, 0),) if args.all_heads else parse_heads(args.heads, 10**9, 10**9)
    given = resolve(args.sketch, asked, "SKETCH", sketch=True)
    if args.out:
        check_writable(args.out, what="program file")
    splits, layers, heads_per_layer, model = _splits(args)
    heads = ([Head(layer, h) for layer in range(layers) for h in range(heads_per_layer)] if args.all_heads
             else list(parse_heads(args.heads, layers, heads_per_layer)))
    sketches = {h: given[Head(0, 0) if args.all_heads else h].program for h in heads}
    shown = describe_given(given)
    library = _library(model)
    rows = []
    from tqdm import tqdm

    for head in tqdm(heads, desc="fit", unit="head", file=sys.stderr, disable=args.quiet or len(heads) < 2):
        train = splits["train"]
        fitted = fit(sketches[head], train.tables, [train.head(k, *head) for k in range(len(train))])
        rows.append({"sketch": sketches[head].text, **_report(head, fitted, splits, library)})
    if args.all_heads:
        rows.sort(key=lambda r: -r["validation"]["iou"])
    if args.out:
        write_text(args.out, dsl.format_programs(tuple(
            dsl.NamedProgram(f"L{r['layer']}.H{r['head']}", dsl.Program.of(r["program"]),
                             (f"# {r['sketch']} fitted: validation iou {r['validation']['iou']:.3f}, "
                              f"test {r['test']['iou']:.3f}",))
            for r in rows)))
    if args.json:
        single = len(set(sketches.values())) == 1
        print(json.dumps({"sketch": rows[0]["sketch"] if single else None, "given": shown, "model": model,
                          "heads": rows}, indent=1))
        return 0
    distinct = set(sketches.values())
    what = (f"sketch {sketches[heads[0]].text} ({sketches[heads[0]].holes} hole(s))" if len(distinct) == 1
            else f"{shown}, {len(distinct)} sketches")
    print(f"{what}, fitted on {len(splits['train'])} training "
          f"sequences; IoU on {len(splits['validation'])} validation / {len(splits['test'])} test sequences")
    listed = rows[: args.top] if args.all_heads else rows
    for r in listed:
        _print(r, brief=args.all_heads)
    if args.all_heads and len(rows) > len(listed):
        print(f"... and {len(rows) - len(listed)} more heads (--top, or --json for all)")
    return 0


def _splits(args):
    """(train/validation/test splits with attention, layers, heads per layer, model name)."""
    if args.capture:
        return _captured(args)
    from headcode.heads import parse_heads
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model
    from headcode.synth import data

    check_corpus(args.corpus)
    loaded = load_model(args.model)
    needed = loaded.n_layers
    if not args.all_heads:
        needed = max(h.layer for h in parse_heads(args.heads, loaded.n_layers, loaded.n_heads)) + 1
    spec = cut(args, train=args.train_seqs, validation=args.validation_seqs, test=args.test_seqs)
    splits = data.cut(loaded, spec)
    for name, split in splits.items():
        if not len(split):
            raise UserError(f"{args.corpus}: no {name} sequences; the corpus is too small to split")
        data.record(loaded, split, progress=not args.quiet, layers=needed)
    return splits, loaded.n_layers, loaded.n_heads, args.model


def _captured(args):
    from headcode.synth.capture import Capture
    from headcode.synth.data import Split

    stored = Capture.open(args.capture)
    splits = {}
    for name, limit in (("train", args.train_seqs), ("validation", args.validation_seqs), ("test", args.test_seqs)):
        split = Split(name)
        for i in stored.indices(name)[:limit]:
            split.tables.append(stored.table(i))
            split.texts.append(stored.entry(i)["text"])
            split.attention.append(stored.attention(i))
        if not len(split):
            raise UserError(f"{args.capture}: the capture has no {name} sequences")
        splits[name] = split
    return splits, stored.layers, stored.heads, stored.model


def _library(model: str):
    """The bundled library of `model`, if there is one (its programs are the comparison)."""
    from headcode.library import available, bundled

    return bundled(model) if model in available() else None


def _report(head, fitted, splits, library) -> dict:
    from headcode import dsl
    from headcode.dsl.describe import describe, family
    from headcode.synth.scoring import score_candidates

    program = fitted.program
    compared = {"fitted": program, "bos": dsl.Program.of("bos"), "uniform": dsl.Program.of("uniform")}
    if library is not None and tuple(head) in library:
        for level in library[head].levels:
            compared[f"library {level.value}"] = library.program_of(*head, level)
    figures = {}
    for name in ("validation", "test"):  # every compared program in one pass over the split
        scored = score_candidates(splits[name], {head: compared}, jsd=False)[head]
        figures[name] = {key: round(s.iou, 4) for key, s in scored.items()}
        figures[name]["iou"] = figures[name]["fitted"]
    return {
        "layer": head.layer, "head": head.head, "program": program.text, "size": program.size,
        "chars": program.chars, "description": describe(program), "family": family(program).value,
        "train_loss": {"start": round(fitted.start_loss, 4), "fitted": round(fitted.loss, 4)},
        "validation": figures["validation"], "test": figures["test"],
        "compared": {k: p.text for k, p in compared.items() if k.startswith("library")},
    }


def _print(r: dict, brief: bool) -> None:
    name = f"L{r['layer']}.H{r['head']}"
    if brief:
        text = r["program"] if len(r["program"]) <= 70 else r["program"][:67] + "..."
        print(f"{name:>7}  validation {r['validation']['iou']:.3f}  test {r['test']['iou']:.3f}  {text}")
        return
    print(f"\n{name}: {r['program']}")
    print(f"  size {r['size']} atoms, {r['chars']} characters; {r['family']}: {r['description']}")
    print(f"  {'':16} {'validation':>10} {'test':>6}")
    for key in r["validation"]:
        if key != "iou":
            print(f"  {key:16} {r['validation'][key]:10.3f} {r['test'][key]:6.3f}")
