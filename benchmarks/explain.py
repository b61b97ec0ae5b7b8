"""Explain benchmark: the whole `explain` job on development text, in the two
sequence shapes of issue 4, printing JSON with the time of each stage, the mean
test IoU and the baselines computed in the same run.

    .venv/bin/python benchmarks/explain.py [--corpus FILE] [--shape paragraphs|windows|both]
                                           [--train N] [--validation 60] [--test 100] [--save DIR]
                                           [--executor local|local:N|ray] [--compare local:1]

`--compare WHERE` runs each shape a second time, first, on that executor (the one-task-
at-a-time `local:1` is the method before the threads) and prints each stage's ratio
of the two runs' seconds: old against new, measured in the same process.

Default corpus: ../shared/data/tinystories/dev.txt when it is there (development
text), else the shipped stories. Shapes: `paragraphs` (each paragraph truncated to
160 tokens, kept with at least 20) and `windows` (consecutive paragraphs cut at
exactly 128 tokens). Fitting sees only the train split, selection the validation
split, and the figures come from the test split; splits are disjoint by a hash of
each sequence's text.

Training sequences by default: 300 paragraphs, 200 windows. A window is 128 tokens
while a development paragraph averages about 50, so 200 windows (25,600 tokens)
hold more text than 300 paragraphs (about 15,000), and the fit's cost grows with
the tokens it reads: 300 windows took 17 minutes on the 2-core machine.
"""

import argparse
import json
import sys
from pathlib import Path

from headcode.cli.summary import explain_report
from headcode.executor import parse_executor, start
from headcode.library import Level
from headcode.loaders.corpora import SplitSpec
from headcode.synth import explain, pipeline

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories" / "dev.txt"
SHAPES = {"paragraphs": 160, "windows": 128}  # tokens per sequence at most
TRAIN = {"paragraphs": 300, "windows": 200}  # training sequences by default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(DEV) if DEV.is_file() else "stories")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--shape", choices=(*SHAPES, "both"), default="both")
    parser.add_argument("--train", type=int, default=None, help="training sequences (300 paragraphs, 200 windows)")
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--heads", default=None, help="only these heads, e.g. L0.H1,L5.H3")
    parser.add_argument("--save", metavar="DIR", help="also write each run's library to DIR/<shape>")
    parser.add_argument("--executor", type=parse_executor, default="local", help="where the job runs (default: local)")
    parser.add_argument("--compare", type=parse_executor, default=None, metavar="WHERE",
                        help="also run each shape on WHERE first (e.g. local:1) and print the ratios")
    args = parser.parse_args()
    report = {"corpus": args.corpus, "model": args.model, "executor": str(args.executor), "runs": {}}
    for shape in SHAPES if args.shape == "both" else (args.shape,):
        spec = SplitSpec(corpus=args.corpus, shape=shape, max_len=SHAPES[shape], train=args.train or TRAIN[shape],
                         validation=args.validation, test=args.test)
        job = pipeline.Job(model=args.model, split=spec, heads_spec=args.heads, settings=explain.Settings())
        before = None
        if args.compare is not None:
            with start(args.compare) as executor:
                old, _ = pipeline.run(job, progress=sys.stderr.isatty(), executor=executor)
            before = {"executor": str(args.compare), "stages_s": old.stages,
                      "mean_iou": {level.value: round(old.mean("iou", level), 4) for level in Level}}
        with start(args.executor) as executor:
            result, library = pipeline.run(job, progress=sys.stderr.isatty(), executor=executor)
        if args.save:
            library.save(Path(args.save) / shape)
        summary = explain_report(result, library)
        report["runs"][shape] = {
            "heads": len(result.heads),
            "levels": summary["levels"],
            "baselines": {k: round(v, 4) for k, v in result.baseline_means().items()},
            "margin_over_greedy_mixture": {level: round(t["mean_iou"] - result.baseline_means()["greedy_mixture"], 4)
                                           for level, t in summary["levels"].items()},
            "sequences": dict(library.split["sequences"]),
            "stages_s": result.stages,
            **({} if before is None else {
                "compared_with": before,
                "speedup": {stage: round(before["stages_s"][stage] / t, 2) for stage, t in result.stages.items()
                            if t > 0 and stage in before["stages_s"]}}),
            "weakest_heads": {level.value: [{"head": str(h.head), "iou": round(h.levels[level].test.iou, 3)}
                                            for h in sorted(result.heads, key=lambda h: h.levels[level].test.iou)[:10]]
                              for level in Level},
        }
        print(json.dumps({shape: report["runs"][shape]}, indent=1), file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
