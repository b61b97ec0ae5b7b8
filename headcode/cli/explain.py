"""`headcode explain` (fit a library), `headcode score` (a library's programs, or one
written by hand, on any text) and `headcode predict` (a library's matrices for one
text, for independent checks)."""

from __future__ import annotations

import json
import sys

import numpy as np

from headcode.cli.options import (add_corpus, add_executor, add_level, add_model, add_quiet, cut, executor,
                                  non_negative, positive, positive_seconds)
from headcode.errors import UserError
from headcode.executor import LOCAL


def register(subparsers) -> None:
    p = subparsers.add_parser("explain", help="fit a program to every head of a model and write a library")
    add_model(p)
    add_corpus(p)
    p.add_argument("--heads", metavar="L0.H1,...", help="only these heads (default: all)")
    p.add_argument("--max-seqs", type=positive, default=200, metavar="N", help="training sequences (200)")
    p.add_argument("--validation-seqs", type=positive, default=40, metavar="N", help="validation sequences (40)")
    p.add_argument("--test-seqs", type=positive, default=40, metavar="N", help="test sequences (40)")
    p.add_argument("--proposer", choices=("search", "openai", "both"), default="search",
                   help="search (offline, the default), openai (an LLM through any OpenAI-compatible server), both")
    p.add_argument("--llm-base-url", metavar="URL", help="OpenAI-compatible server (else $OPENAI_BASE_URL)")
    p.add_argument("--llm-model", metavar="NAME", help="model name (else $HEADCODE_LLM_MODEL or $OPENAI_MODEL)")
    p.add_argument("--llm-api-key", metavar="KEY", help="API key (else $OPENAI_API_KEY)")
    p.add_argument("--llm-timeout", type=positive_seconds, default=60.0, metavar="S",
                   help="seconds one request may take in all (60)")
    p.add_argument("--llm-retries", type=non_negative, default=2, metavar="N",
                   help="follow-up turns after a reply with no valid program (2)")
    p.add_argument("--out", required=True, metavar="LIB", help="the library directory to write")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_executor(p, "capture and the fits")
    add_quiet(p)
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser("score", help="score a library's programs, or one written by hand, against a model's "
                                            "heads on any text (default: the test split)",
                              epilog="With --program there is no library: the text's defaults are those of explain's "
                                     "default cut (the test split of the shipped stories, packed, 128 tokens, seed 0).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--library", metavar="LIB", help="score this library's programs (at --level)")
    what.add_argument("--program", metavar="TEXT_OR_FILE",
                      help="score this program (text, a file of one program, FILE:NAME, or a file of definitions "
                           "named after the heads) against --heads")
    p.add_argument("--heads", metavar="L0.H1,...", help="the heads to score (needed with --program; with --library: "
                                                        "only these of its heads)")
    add_model(p, or_library=True)  # a library's own model, not the default one
    add_corpus(p, from_library=True)
    p.add_argument("--split", choices=("train", "validation", "test", "all"),
                   help="which split of the cut to score (default: test without --corpus, all with it)")
    add_level(p, "short")
    p.add_argument("--max-seqs", type=positive, default=100, metavar="N", help="sequences scored at most (100)")
    p.add_argument("--force", action="store_true", help="score even if the model's fingerprint differs from the "
                                                        "library's")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_executor(p, "capture and scoring")
    add_quiet(p)
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("predict", help="write every library head's predicted matrix for one text (.npz)")
    p.add_argument("--library", required=True, metavar="LIB")
    p.add_argument("--model", metavar="M", help="whose tokenizer to use (default: the library's model)")
    p.add_argument("--text", required=True, metavar="TEXT")
    p.add_argument("--max-len", type=positive, default=512, metavar="L", help="tokens at most (512)")
    add_level(p, "short")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_predict)


def cmd_explain(args) -> int:
    from headcode.cli.summary import explain_report, print_explain_table
    from headcode.library import Library
    from headcode.synth import explain, pipeline

    Library.check_target(args.out)  # before the slow parts
    llm = None
    if args.proposer != explain.Proposer.SEARCH.value:
        from headcode.synth.llm import LLMConfig, default_cache_dir

        llm = LLMConfig.from_env(args.llm_base_url, args.llm_model, args.llm_api_key, cache_dir=default_cache_dir(),
                                 timeout_s=args.llm_timeout, retries=args.llm_retries)
    spec = cut(args, train=args.max_seqs, validation=args.validation_seqs, test=args.test_seqs)
    job = pipeline.Job(model=args.model, split=spec, heads_spec=args.heads,
                       settings=explain.Settings(proposer=explain.Proposer(args.proposer), llm=llm))
    with executor(args) as ex:
        result, lib = pipeline.run(job, progress=not args.quiet, executor=ex)
    lib.save(args.out)
    report = explain_report(result, lib)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_explain_table(report)
        print(f"wrote {args.out}: {report['num_programs']} distinct programs for {len(result.heads)} heads")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _attach(args, reads_corpus: bool = False):
    """The library and its model; with `reads_corpus`, the corpus to read (--corpus, else
    the library's) is checked first."""
    from headcode.library import Library, identity_of
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model

    lib = Library.load(args.library)
    if reads_corpus:
        check_corpus(args.corpus or lib.split["corpus"])  # before the slow model load
    loaded = load_model(args.model or lib.model.name)
    for warning in lib.check_model(identity_of(args.model or lib.model.name, loaded.model, loaded.tokenizer),
                                   force=getattr(args, "force", False)):
        print(f"headcode: warning: {warning}", file=sys.stderr)
    return lib, loaded


def cmd_score(args) -> int:
    with executor(args) as ex:
        loaded, programs, base, about, origins = (_library_programs if args.program is None else _given_programs)(args)
        split, where = _text(args, loaded, base, layers=max(layer for layer, _ in programs) + 1, executor=ex)
        report = {**about, **score_report(split, programs, where, progress=not args.quiet, executor=ex)}
    for h in report["heads"] if origins else ():
        h["origin"] = origins[h["layer"], h["head"]]
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    what = f"{report['level']} programs" if args.program is None else report["given"]
    print(f"{len(programs)} head{'s' if len(programs) != 1 else ''} ({what}) on {len(split)} sequences "
          f"({split.tokens} tokens) of {where}")
    if args.heads is not None:
        print(f"{'head':>7} {'iou':>6} {'all rows':>8} {'jsd':>6} {'bos':>6} {'unif':>6}  program")
        for h in report["heads"]:
            text = h["program"] if len(h["program"]) <= 80 else h["program"][:77] + "..."
            print(f"{'L%d.H%d' % (h['layer'], h['head']):>7} {h['iou']:6.3f} {h['iou_all_rows']:8.3f} "
                  f"{h['jsd']:6.3f} {h['baselines']['bos']:6.3f} {h['baselines']['uniform']:6.3f}  {text}")
    print(f"mean iou {report['mean_iou']:.3f} (all rows {report['mean_iou_all_rows']:.3f}), "
          f"jsd {report['mean_jsd']:.3f} bits; baselines: bos {report['baselines']['bos']:.3f}, "
          f"uniform {report['baselines']['uniform']:.3f}")
    return 0


def _library_programs(args):
    """(model, head -> program, the cut to score by default, report fields, {}) of `--library`."""
    from headcode.heads import parse_heads
    from headcode.library import Level
    from headcode.loaders.corpora import SplitSpec

    level = Level(args.level)
    lib, loaded = _attach(args, reads_corpus=True)
    wanted = tuple(lib) if args.heads is None else parse_heads(args.heads, lib.model.num_layers, lib.model.num_heads)
    programs = {key: lib.program_of(*key, level) for key in wanted if key in lib and level in lib[key].levels}
    if args.heads is not None and len(programs) < len(wanted):
        missing = ", ".join(str(key) for key in wanted if key not in programs)
        raise UserError(f"--heads: {args.library} has no {level.value} program for {missing}")
    if not programs:
        raise UserError(f"{args.library}: no head has a {level.value} program")
    return loaded, programs, SplitSpec.from_record(lib.split), {"level": level.value}, {}


def _given_programs(args):
    """(model, head -> program, the cut to score by default, report fields, head -> where
    its program came from) of `--program` (`cli.program_option`)."""
    from headcode.cli.program_option import describe, resolve
    from headcode.heads import outside, parse_heads
    from headcode.loaders.corpora import SplitSpec, check_corpus
    from headcode.loaders.models import EMBEDDED, load_model

    args.model = args.model or EMBEDDED  # no library to name one
    if args.heads is None:
        raise UserError("--program needs --heads: the heads to score it against, like L0.H1,L3.H2")
    if args.force:
        raise UserError("--force is for --library (a library fitted to another model); --program has no library")
    wanted = parse_heads(args.heads, 10**9, 10**9)  # checked against the model once it is loaded
    given = resolve(args.program, wanted)  # a bad program fails before the slow model load
    check_corpus(args.corpus)
    loaded = load_model(args.model)
    for key in wanted:
        if (why := outside(key, loaded.n_layers, loaded.n_heads, args.model)) is not None:
            raise UserError(f"--heads: {why}")
    return (loaded, {key: g.program for key, g in given.items()}, SplitSpec(), {"given": describe(given)},
            {key: g.origin for key, g in given.items()})


def _text(args, loaded, base, layers: int | None = None, executor=None):
    """(the captured Split to score, what it is): one split of the cut (`--split`; over
    `base`, a library's recorded cut, without `--corpus`), or every sequence of it; the
    model is run up to layer `layers` - 1 only (`data.record`)."""
    from headcode.loaders.corpora import SPLITS, SplitSpec
    from headcode.synth import data

    name = args.split or ("test" if args.corpus is None else "all")
    spec = cut(args, base=base if args.corpus is None else SplitSpec(corpus=args.corpus),
               **{s: args.max_seqs if s == name else 0 for s in SPLITS})
    if name == "all":  # any text: every sequence of it
        split = data.Split("all")
        for seq in spec.stream(loaded.tokenizer, loaded.add_special_tokens):
            if len(split) >= args.max_seqs:
                break
            if len(seq.table) >= 2:
                split.tables.append(seq.table)
                split.texts.append(seq.text)
        where = spec.corpus
    else:
        split = data.cut(loaded, spec, names=(name,))[name]
        where = f"the {name} split of {spec.corpus}"
    if not len(split):
        raise UserError(f"{spec.corpus}: no {'' if name == 'all' else name + ' '}sequences of at least 2 tokens "
                        "to score")
    return data.record(loaded, split, progress=not args.quiet, layers=layers, executor=executor or LOCAL), where


def score_report(split, programs: dict, where: str, progress: bool = False, executor=None) -> dict:
    """Each head's program (a dict head -> dsl.Program) and the baselines `bos` and
    `uniform` scored on a captured split, as `score` prints it (`--json`); scored on
    `executor` (default: in this process)."""
    from headcode import dsl
    from headcode.synth.scoring import mean_of
    from headcode.synth.tasks import scored as scored_on

    baselines = {name: dsl.Program.of(name) for name in ("bos", "uniform")}
    scored = scored_on(executor or LOCAL, split, {key: {"program": p, **baselines} for key, p in programs.items()},
                       progress=progress)
    mine = {key: s["program"] for key, s in scored.items()}
    return {
        "text": where,
        "mean_iou": mean_of(mine, "iou"),
        "mean_iou_all_rows": mean_of(mine, "iou_all_rows"),
        "mean_jsd": mean_of(mine, "jsd"),
        "sequences": len(split), "tokens": split.tokens,
        "heads": [{"layer": l, "head": h, "program": programs[l, h].text, **mine[l, h].as_dict(),
                   "baselines": {name: scored[l, h][name].iou for name in baselines}} for l, h in mine],
        "baselines": {name: mean_of({key: s[name] for key, s in scored.items()}) for name in baselines},
    }


def cmd_predict(args) -> int:
    from headcode import fileio
    from headcode.compiler import ProgramBatch
    from headcode.dsl.tokens import TokenTable
    from headcode.library import Level

    if not args.text.strip():
        raise UserError("--text is empty: give a text to predict on")
    fileio.check_writable(args.out, what="predictions")
    lib, loaded = _attach(args)
    table = TokenTable.from_text(loaded.tokenizer, args.text, max_len=args.max_len,
                                 add_special_tokens=loaded.add_special_tokens)
    level = Level(args.level)
    keys = [key for key in lib if level in lib[key].levels]
    if not keys:
        raise UserError(f"{args.library}: no head has a {level.value} program (try --level "
                        f"{'full' if level.value == 'short' else 'short'})")
    matrices = ProgramBatch([lib.program_of(*k, level) for k in keys]).evaluate(table)
    arrays = {f"L{l}.H{h}": matrices[k] for k, (l, h) in enumerate(keys)}
    arrays["input_ids"] = np.asarray(table.ids)
    with fileio.atomic_path(args.out, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    print(f"wrote {args.out}: {len(keys)} heads on {len(table)} tokens")
    return 0
