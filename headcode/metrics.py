"""How close a predicted attention matrix is to a real one. NumPy only.

Both scores compare row by row (a row is query i's distribution over keys) and work
on stacks: arrays of shape [..., n, n] give one value per leading index, so a whole
capture of [layers, heads, n, n] is scored at once.

IoU (the paper's soft, weighted Jaccard): per row, sum_j min(A_ij, P_ij) divided by
sum_j max(A_ij, P_ij); the mean over rows; then (`mean_scores`) the mean over
sequences. A row where both are all zero counts as identical (1.0).

Every report gives it two ways:
  iou           rows 1..n-1. Row 0 of a causal model can only attend to itself, so
                every causal program scores a free 1.0 there; leaving it out is the
                honest figure. NaN for a one-token sequence (no such rows).
  iou_all_rows  rows 0..n-1, comparable with the paper's numbers.

JSD: the Jensen-Shannon divergence of each row pair in bits (so in [0, 1]; 0 for
identical rows), averaged like `iou` over rows 1..n-1. Rows are used as given:
callers pass row-stochastic matrices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    iou: float  # rows 1..n-1
    iou_all_rows: float  # rows 0..n-1 (the paper's figure)
    jsd: float  # rows 1..n-1, bits

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _pair(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if a.shape != p.shape or a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"need two [..., n, n] arrays of one shape, got {a.shape} and {p.shape}")
    return a, p


def row_iou(actual, predicted) -> np.ndarray:
    """Per-row soft IoU, shape [..., n]."""
    a, p = _pair(actual, predicted)
    low = np.minimum(a, p).sum(axis=-1)
    high = np.maximum(a, p).sum(axis=-1)
    out = np.ones_like(high)
    np.divide(low, high, out=out, where=high > 0)
    return out


def row_jsd(actual, predicted) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in bits, shape [..., n]."""
    a, p = _pair(actual, predicted)
    m = (a + p) / 2
    return np.clip((_kl_bits(a, m) + _kl_bits(p, m)) / 2, 0.0, 1.0)


def _kl_bits(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum_j x_j log2(x_j / m_j), with 0 log 0 = 0 (m_j > 0 wherever x_j > 0)."""
    ratio = np.divide(x, m, out=np.ones_like(x), where=x > 0)
    return (x * np.log2(ratio)).sum(axis=-1)


def _mean_rows(per_row: np.ndarray, skip_first: bool) -> np.ndarray:
    rows = per_row[..., 1:] if skip_first else per_row
    if rows.shape[-1] == 0:
        return np.full(rows.shape[:-1], np.nan)
    return rows.mean(axis=-1)


def iou(actual, predicted, all_rows: bool = False) -> np.ndarray | float:
    """Mean row IoU over rows 1..n-1 (or all rows): a float, or an array over leading dims."""
    return _scalar(_mean_rows(row_iou(actual, predicted), skip_first=not all_rows))


def jsd(actual, predicted, all_rows: bool = False) -> np.ndarray | float:
    """Mean row JSD (bits) over rows 1..n-1 (or all rows)."""
    return _scalar(_mean_rows(row_jsd(actual, predicted), skip_first=not all_rows))


def scores(actual, predicted) -> Scores:
    """The three figures for one [n, n] pair."""
    per_row = row_iou(actual, predicted)
    if per_row.ndim != 1:
        raise ValueError(f"scores() takes one [n, n] pair; for stacks use iou()/jsd(), got {per_row.shape}")
    return Scores(
        iou=float(_mean_rows(per_row, skip_first=True)),
        iou_all_rows=float(per_row.mean()),
        jsd=float(_mean_rows(row_jsd(actual, predicted), skip_first=True)),
    )


def mean_scores(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Scores:
    """Scores averaged over sequences (each sequence weighs the same, as in the paper).

    One-token sequences have no `iou`/`jsd` rows; they count only in `iou_all_rows`.
    """
    per_sequence = [scores(a, p) for a, p in pairs]
    if not per_sequence:
        raise ValueError("no sequences to score")
    columns = {name: np.array([getattr(s, name) for s in per_sequence]) for name in ("iou", "iou_all_rows", "jsd")}
    return Scores(**{name: _nanmean(values) for name, values in columns.items()})


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def _scalar(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x
