"""Scoring programs against captured heads: per-head IoU, IoU over all rows and JSD.

Each head's program is run by the kernels on every sequence (all distinct programs
of a run in one kernel call per sequence) and compared with the head's rows by
`headcode.metrics`; sequences weigh equally, as in the paper.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import numpy as np

from headcode import metrics
from headcode.compiler import ProgramBatch
from headcode.dsl import ir
from headcode.synth.data import Split

Head = tuple[int, int]
FIGURES = ("iou", "iou_all_rows", "jsd")


def score_heads(split: Split, programs: Mapping[Head, ir.Pattern], progress: bool = False,
                desc: str = "score") -> dict[Head, dict[str, float]]:
    """{head: {"iou", "iou_all_rows", "jsd"}} of each head's program on `split`."""
    return score_candidates(split, {h: [p] for h, p in programs.items()}, progress, desc)[0]


def score_candidates(split: Split, candidates: Mapping[Head, Sequence[ir.Pattern]], progress: bool = False,
                     desc: str = "score") -> list[dict[Head, dict[str, float]]]:
    """Like `score_heads` for several candidate programs per head: result[c][head]
    scores candidate c of each head (heads with fewer candidates are left out)."""
    from tqdm import tqdm

    # Programs are frozen trees that compare by value: equal programs run once,
    # without printing every (possibly large) program to hash its canonical text.
    ids: dict[ir.Pattern, int] = {}
    for options in candidates.values():
        for p in options:
            ids.setdefault(p, len(ids))
    pool = list(ids)
    index = {h: [ids[p] for p in options] for h, options in candidates.items()}
    width = max((len(v) for v in index.values()), default=0)
    sums = {h: np.zeros((len(v), len(FIGURES))) for h, v in index.items()}
    counts = {h: np.zeros((len(v), len(FIGURES))) for h, v in index.items()}
    batch = ProgramBatch(pool)
    for k in tqdm(range(len(split)), desc=desc, unit="seq", file=sys.stderr, disable=not progress):
        matrices = batch.evaluate(split.tables[k])
        attention = split.attention[k]
        n = matrices.shape[-1]
        for c in range(width):
            heads = [h for h in index if len(index[h]) > c]
            actual = attention[[h[0] for h in heads], [h[1] for h in heads]].astype(np.float64)
            predicted = matrices[[index[h][c] for h in heads]]
            per_row = metrics.row_iou(actual, predicted)  # [heads, n]
            values = np.stack([
                per_row[:, 1:].mean(1) if n > 1 else np.full(len(heads), np.nan),
                per_row.mean(1),
                metrics.row_jsd(actual, predicted)[:, 1:].mean(1) if n > 1 else np.full(len(heads), np.nan),
            ], axis=1)
            for h, v in zip(heads, values):
                ok = ~np.isnan(v)
                sums[h][c, ok] += v[ok]
                counts[h][c, ok] += 1
    out: list[dict[Head, dict[str, float]]] = [{} for _ in range(width)]
    for h in index:
        mean = np.divide(sums[h], counts[h], out=np.full_like(sums[h], np.nan), where=counts[h] > 0)
        for c in range(len(index[h])):
            out[c][h] = {name: float(mean[c, f]) for f, name in enumerate(FIGURES)}
    return out


def mean_of(scores: Mapping[Head, Mapping[str, float]], figure: str = "iou") -> float:
    values = [s[figure] for s in scores.values() if not np.isnan(s[figure])]
    return float(np.mean(values)) if values else float("nan")
