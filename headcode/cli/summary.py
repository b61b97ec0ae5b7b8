"""What `explain` (and the demo) print about an explanation: a JSON-ready report and
the table of heads with both levels and the baselines."""

from __future__ import annotations

from collections import Counter

from headcode.dsl.shape import shape_id
from headcode.library import Level


def explain_report(result, lib) -> dict:
    """The figures of an explain run (synth.explain.Explanation) and its library."""
    levels = {}
    for level in Level:
        explained = [h.levels[level] for h in result.heads]
        programs = [e.program for e in explained]
        sizes = sorted(p.chars for p in programs)
        levels[level.value] = {
            "mean_iou": result.mean("iou", level),
            "mean_iou_all_rows": result.mean("iou_all_rows", level),
            "mean_jsd": result.mean("jsd", level),
            "distinct_programs": len(set(programs)),
            "distinct_shapes": len({shape_id(p) for p in programs}),
            "median_chars": sizes[len(sizes) // 2] if sizes else 0,
            "largest_chars": sizes[-1] if sizes else 0,
            "sources": dict(sorted(Counter(e.source.value for e in explained).items())),
        }
    return {
        "levels": levels,
        "baselines": result.baseline_means(),
        "num_programs": len(lib.programs),
        "stages_s": result.stages,
        "heads": [{"layer": h.head.layer, "head": h.head.head, "baselines": h.baselines,
                   "levels": {level.value: {"program": e.program.text, "size": e.program.size, "source": e.source.value,
                                            "iou": e.test.iou, "iou_all_rows": e.test.iou_all_rows,
                                            "validation_iou": e.validation.iou}
                              for level, e in h.levels.items()}} for h in result.heads],
    }


def print_explain_table(report: dict) -> None:
    print(f"{'head':>7} {'short':>5} {'full':>5} {'bos':>5} {'unif':>5} {'single':>6} {'mix3':>5}  short program")
    for h in report["heads"]:
        b, short, full = h["baselines"], h["levels"]["short"], h["levels"]["full"]
        program = short["program"] if len(short["program"]) <= 60 else short["program"][:57] + "..."
        print(f"L{h['layer']:>2}.H{h['head']:<2} {short['iou']:5.3f} {full['iou']:5.3f} {b['bos']:5.3f} "
              f"{b['uniform']:5.3f} {b['best_single']:6.3f} {b['greedy_mixture']:5.3f}  {program}")
    b, levels = report["baselines"], report["levels"]
    print(f"{'mean':>7} {levels['short']['mean_iou']:5.3f} {levels['full']['mean_iou']:5.3f} {b['bos']:5.3f} "
          f"{b['uniform']:5.3f} {b['best_single']:6.3f} {b['greedy_mixture']:5.3f}   (iou over rows 1..n-1 on the "
          "test split)")
    for name, t in levels.items():
        print(f"{name}: {t['distinct_programs']} distinct programs, {t['distinct_shapes']} shapes, median "
              f"{t['median_chars']} characters (largest {t['largest_chars']})")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["stages_s"].items()))
