"""`headcode demo`: the main job on the embedded defaults (what `make demo` runs).

Explains heads of the embedded model (smollm2-135m) on the shipped stories:
capture, search and fit, select on validation, score on test, and write the library
to `--out` (default `demo.lib`); then shows a few of the fitted programs on a
sentence, and the figures of the library shipped for all 270 heads. By default it
explains the heads of three layers (DEMO_LAYERS), a few minutes on 2 cores; every
head (`--all-heads`) takes about a quarter of an hour. `--hand` shows the
hand-written example programs (demo.hc) instead.
"""

from __future__ import annotations

import json
from importlib import resources

from headcode import dsl

SENTENCE = 'Tom saw a big dog. The dog ran to Tom, and Tom said: "Hello, dog!"'
DEMO_LAYERS = (0, 8, 16)  # early, middle, late: sinks, punctuation, previous-token and content heads


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="explain the embedded model on the shipped stories (make demo)")
    p.add_argument("--out", default="demo.lib", metavar="LIB", help="where to write the library (demo.lib)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--heads", metavar="L0.H1,...",
                       help=f"these heads (default: every head of layers {', '.join(map(str, DEMO_LAYERS))})")
    which.add_argument("--all-heads", action="store_true", help="every head of the model (about 15 minutes)")
    p.add_argument("--hand", action="store_true", help="only show the hand-written example programs")
    p.add_argument("--text", default=SENTENCE, metavar="SENTENCE", help="the sentence to show programs on")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    if args.hand:
        return _hand(args.text)
    from headcode.cli.summary import explain_report, print_explain_table
    from headcode.library import Level, Library, bundled
    from headcode.library.bundled import path as bundled_path
    from headcode.loaders.corpora import DEFAULT, SplitSpec
    from headcode.loaders.models import EMBEDDED
    from headcode.synth import pipeline

    Library.check_target(args.out)
    shipped = bundled(EMBEDDED)
    heads = None if args.all_heads else args.heads or ",".join(
        f"L{layer}.H{h}" for layer in DEMO_LAYERS for h in range(shipped.model.num_heads))
    what = "every head" if heads is None else (
        f"the heads of layers {', '.join(map(str, DEMO_LAYERS))}" if args.heads is None else args.heads)
    print(f"explaining {what} of {EMBEDDED} on the shipped {DEFAULT} "
          f"({'about 15 minutes' if heads is None else 'a few minutes'} on 2 cores)")
    result, lib = pipeline.run(pipeline.Job(model=EMBEDDED, split=SplitSpec(DEFAULT), heads_spec=heads),
                               progress=not args.quiet)
    lib.save(args.out)
    report = explain_report(result, lib)
    print_explain_table(report)
    print(f"\nwrote {args.out} ({report['num_programs']} distinct programs); inspect it with "
          f"`headcode library inspect {args.out}`")
    best = sorted(result.heads, key=lambda h: -h.levels[Level.SHORT].test.iou)[:3]
    _show([(f"{h.head} short (test iou {h.levels[Level.SHORT].test.iou:.2f})", h.levels[Level.SHORT].program)
           for h in best], args.text, lib)
    print(json.dumps({level: t["mean_iou"] for level, t in report["levels"].items()} | {"baselines": report["baselines"]}))
    means = {level: sum(shipped[k][level].test["iou"] for k in shipped) / len(shipped) for level in shipped.levels}
    greedy = sum(shipped[k].baselines["greedy_mixture"] for k in shipped) / len(shipped)
    print(f"\nthe library shipped for all {len(shipped)} heads (headcode.library.bundled({EMBEDDED!r})), on its "
          f"test split: " + ", ".join(f"{level.value} mean iou {m:.3f}" for level, m in means.items())
          + f", greedy mixture {greedy:.3f}; read one head with `headcode library inspect "
          f"{bundled_path(EMBEDDED)} --heads L16.H0`")
    return 0


def _show(programs, text: str, lib=None) -> None:
    from headcode.compiler import compile_program
    from headcode.dsl.tokens import TokenTable
    from headcode.plots import terminal_heatmap

    if lib is not None:
        from headcode.loaders.models import load_model

        tokenizer = load_model(lib.model.name).tokenizer
        table = TokenTable.from_text(tokenizer, text)
        labels = [s.strip() or "·" for s in table.surfaces]
    else:
        from headcode.cli.programs import split_words

        labels = split_words(text)
        table = TokenTable.from_words(labels)
    for title, program in programs:
        shown = program.text
        print(f"\n{title} = {shown if len(shown) < 300 else shown[:297] + '...'}    [id {program.id}]")
        print(terminal_heatmap(compile_program(program).evaluate(table), labels))


def _hand(text: str) -> int:
    source = resources.files("headcode.cli").joinpath("demo.hc").read_text("utf-8")
    programs = dsl.parse_programs(source, "demo.hc")
    print(f"{len(programs)} hand-written programs on: {text}")
    for program in programs:
        for comment in program.comments:
            print(comment)
        _show([(program.name, program.program)], text)
    return 0
