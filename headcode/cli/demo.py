"""`headcode demo`: the product in a few minutes on the embedded defaults (`make demo`).

1. explains a handful of heads of the embedded model (smollm2-135m) live, on the
   shipped stories: capture (only the layers up to the last head), search and fit,
   select on validation, score on test, write the library to `--out` (demo.lib), and
   show the best fitted programs on a sentence;
2. prints the figures of the library shipped for all 270 heads;
3. measures a short replacement curve with the shipped library: perplexity on a few
   test sequences with 0, 25% and 50% of the heads replaced by their programs;
4. writes the report of the shipped library (`headcode report`, docs/report.md) to
   `--report` (demo-report) and prints the address to open.

`--all-heads` explains every head instead (about a quarter of an hour; the full job is
`headcode explain`); `--hand` only shows the hand-written example programs (demo.hc).
"""

from __future__ import annotations

import json
from importlib import resources

from headcode import dsl

SENTENCE = 'Tom saw a big dog. The dog ran to Tom, and Tom said: "Hello, dog!"'
# Heads of two early layers (fitting costs a layer, and the model runs only up to the
# last one): words (L0.H0), punctuation (L0.H6), a sink that also likes "the" (L3.H6).
DEMO_HEADS = "L0.H0,L0.H6,L3.H6"
TRAIN_SEQUENCES = 64  # fitted on these (the shipped library: every training sequence, 152)
CURVE = (0.0, 0.25, 0.5)  # fractions of heads replaced in the short curve
CURVE_SEQUENCES = 8  # test sequences it is measured on


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the product in a few minutes: explain a few heads live, the shipped "
                                           "library's figures and replacement curve, and its report (make demo)")
    p.add_argument("--out", default="demo.lib", metavar="LIB", help="where to write the library (demo.lib)")
    p.add_argument("--report", default="demo-report", metavar="DIR",
                   help="where to write the report of the shipped library (demo-report)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--heads", metavar="L0.H1,...", help=f"the heads to explain live (default: {DEMO_HEADS})")
    which.add_argument("--all-heads", action="store_true", help="every head of the model (about 5 minutes)")
    p.add_argument("--hand", action="store_true", help="only show the hand-written example programs")
    p.add_argument("--text", default=SENTENCE, metavar="SENTENCE", help="the sentence to show programs on")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    if args.hand:
        return _hand(args.text)
    from headcode.cli.summary import explain_report, print_explain_table
    from headcode.library import Level, Library, bundled
    from headcode.loaders.corpora import DEFAULT, SplitSpec
    from headcode.loaders.models import EMBEDDED
    from headcode.report import Settings, report
    from headcode.report.site import check_target
    from headcode.synth import pipeline

    Library.check_target(args.out)
    check_target(args.report)
    heads = None if args.all_heads else args.heads or DEMO_HEADS
    spec = SplitSpec(DEFAULT) if heads is None else SplitSpec(DEFAULT, train=TRAIN_SEQUENCES)
    print(f"1. explaining {'every head' if heads is None else heads} of {EMBEDDED}, fitted on {spec.train} training "
          f"sequences of the shipped {DEFAULT} ({'about 5 minutes' if heads is None else 'about a minute'} on 2 "
          "cores; `headcode explain` runs the whole job)")
    result, lib = pipeline.run(pipeline.Job(model=EMBEDDED, split=spec, heads_spec=heads), progress=not args.quiet)
    lib.save(args.out)
    explained = explain_report(result, lib)
    print_explain_table(explained)
    print(f"\nwrote {args.out} ({explained['num_programs']} distinct programs); inspect it with "
          f"`headcode library inspect {args.out}`")
    best = sorted(result.heads, key=lambda h: -h.levels[Level.SHORT].test.iou)[:3]
    _show([(f"{h.head} short (test iou {h.levels[Level.SHORT].test.iou:.2f})", h.levels[Level.SHORT].program)
           for h in best], args.text, lib)
    print(json.dumps({level: t["mean_iou"] for level, t in explained["levels"].items()}
                     | {"baselines": explained["baselines"]}))

    shipped = bundled(EMBEDDED)
    means = {level: sum(shipped[k][level].test["iou"] for k in shipped) / len(shipped) for level in shipped.levels}
    greedy = sum(shipped[k].baselines["greedy_mixture"] for k in shipped) / len(shipped)
    print(f"\n2. the library shipped for all {len(shipped)} heads (headcode.library.bundled({EMBEDDED!r})), on its "
          f"test split: " + ", ".join(f"{level.value} mean iou {m:.3f}" for level, m in means.items())
          + f", greedy mixture {greedy:.3f}")
    _curve(shipped)

    print("\n4. the report of the shipped library: every head at a glance, each head's programs and heatmaps")
    written = report(shipped, args.report, Settings(), progress=not args.quiet)
    print(f"wrote {written.path} ({written.heads} head pages, {written.bytes / 2**20:.0f} MB); open "
          f"{(written.path / 'index.html').resolve().as_uri()}")
    return 0


def _curve(shipped) -> None:
    """Perplexity with 0, 25% and 50% of the heads replaced by their full programs, on a
    few sequences of the shipped library's own test split (`headcode replace` measures
    more, with QA)."""
    from headcode.loaders.models import load_model
    from headcode.replace import measure
    from headcode.synth.pipeline import recorded_splits

    loaded = load_model(shipped.model.name)
    tables = recorded_splits(loaded, shipped.split, names=("test",))["test"].tables[:CURVE_SEQUENCES]
    points = measure.curve(loaded.model, loaded.tokenizer, shipped, tables, CURVE)
    print(f"\n3. replacing heads by their full programs (the ones whose replacement alone cost least first), "
          f"perplexity on {len(tables)} test sequences ({points[0]['tokens']} tokens):")
    for p in points:
        print(f"   {p['fraction']:>4.0%} of heads ({p['heads_replaced']:>3}): perplexity {p['perplexity']:6.2f} "
              f"({p['increase']:+.1%})")


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
