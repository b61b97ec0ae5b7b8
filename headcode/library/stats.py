"""Summaries of a library, per level of detail: how many distinct programs and
shapes explain its heads, how large they are, their families, and score quantiles.

A program's *shape* is its text with the fitted numbers written `?`
(`headcode.dsl.shape`); its *family* and *size* are those of `headcode.dsl`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from headcode.dsl.describe import family
from headcode.dsl.shape import shape_id, shape_text

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _quantiles(values) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), **{f"q{int(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES}}


WEAKEST = 5  # heads listed as the least well explained at each level (by test IoU)


def summary(library) -> dict:
    """Plain data, one entry per level the library has (`levels`), and the heads."""
    out = {"num_heads": len(library), "num_programs": len(library.programs), "levels": {}}
    for level in library.levels:
        named = [(h, h[level]) for h in library.values() if level in h.levels]
        entries = [e for _, e in named]
        tested = sorted((e.test["iou"], h.name) for h, e in named if "iou" in e.test)
        programs = [library.programs[e.program] for e in entries]
        shapes = Counter(shape_id(p) for p in programs)
        texts = {shape_id(p): shape_text(p) for p in programs}
        scores = {}
        for split in ("validation", "test"):
            figures = sorted({f for e in entries for f in getattr(e, split)})
            scores[split] = {f: {"count": len(vs), **_quantiles(vs)} for f in figures
                             if (vs := [getattr(e, split)[f] for e in entries if f in getattr(e, split)])}
        out["levels"][level.value] = {
            "heads": len(entries),
            "distinct_programs": len(set(programs)),
            "distinct_shapes": len(shapes),
            "size": _quantiles([p.size for p in programs]),
            "chars": _quantiles([p.chars for p in programs]),
            "families": dict(sorted(Counter(family(p).value for p in programs).items())),
            "sources": dict(sorted(Counter(e.source for e in entries).items())),
            "shapes": [{"shape": sid, "heads": n, "text": texts[sid]} for sid, n in shapes.most_common()],
            "scores": scores,
            "weakest": [{"head": name, "test_iou": iou} for iou, name in tested[:WEAKEST]],
        }
    return out


__all__ = ["QUANTILES", "summary"]
