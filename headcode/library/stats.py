"""Summaries of a library: program families, heads per program, score quantiles.

A program's *family* is its top-level construct: `softmax` (a score program),
`mixture`, or for a selection `select:NAME`, where NAME is the word its canonical
text starts with (`select:bos`, `select:prev`, `select:last`, `select:uniform`,
`select:decay`, ...). A fallback `P else Q` belongs to the family of P, the option
that decides most rows (canonical `prev(1)` is `prev(1) else bos`).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from headcode import dsl
from headcode.dsl import ir


def family(pattern) -> str:
    if isinstance(pattern, ir.Score):
        return "softmax"
    if isinstance(pattern, ir.Mix):
        return "mixture"
    if isinstance(pattern, ir.Fallback):
        return family(pattern.options[0])
    m = re.match(r"[A-Za-z_]+", dsl.show(pattern))
    return f"select:{m.group(0) if m else 'other'}"


def summary(library, quantiles=(0.0, 0.25, 0.5, 0.75, 1.0)) -> dict:
    """Plain data: families (programs and heads per family), the histogram of
    heads per program, and per split and metric the score quantiles."""
    uses = Counter(h.program for h in library.values())
    fam_programs = Counter(family(p) for p in library.programs.values())
    fam_heads = Counter()
    for pid, n in uses.items():
        fam_heads[family(library.programs[pid])] += n
    scores = {}
    for split in ("validation", "test"):
        by_metric: dict[str, list[float]] = {}
        for h in library.values():
            for metric, v in getattr(h, split).items():
                by_metric.setdefault(metric, []).append(v)
        scores[split] = {
            metric: {"count": len(vs), "mean": float(np.mean(vs)),
                     **{f"q{int(q * 100)}": float(np.quantile(vs, q)) for q in quantiles}}
            for metric, vs in sorted(by_metric.items())
        }
    return {
        "num_programs": len(library.programs),
        "num_heads": len(library),
        "families": {f: {"programs": fam_programs[f], "heads": fam_heads[f]} for f in sorted(fam_programs)},
        "heads_per_program": {str(k): v for k, v in sorted(Counter(uses.values()).items())},
        "scores": scores,
    }
