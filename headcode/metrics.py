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

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Scores:
    """The figures of one sequence or a mean over sequences: floats, or arrays for stacks."""

    iou: float  # rows 1..n-1
    iou_all_rows: float  # rows 0..n-1 (the paper's figure)
    jsd: float  # rows 1..n-1, bits

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


FIGURES = tuple(f.name for f in fields(Scores))


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


def scores(actual, predicted, jsd: bool = True) -> Scores:
    """The three figures of one [n, n] pair (floats), or of each matrix of two
    [..., n, n] stacks (arrays over the leading dimensions). `jsd=False` leaves the
    JSD out (NaN): choosing among candidates by IoU does not need its logarithms."""
    per_row = row_iou(actual, predicted)
    rows = per_row.shape[:-1]
    return Scores(
        iou=_scalar(_mean_rows(per_row, skip_first=True)),
        iou_all_rows=_scalar(per_row.mean(axis=-1)),
        jsd=_scalar(_mean_rows(row_jsd(actual, predicted), skip_first=True) if jsd else np.full(rows, np.nan)),
    )


def mean_scores(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Scores:
    """Scores averaged over sequences (each sequence weighs the same, as in the paper).

    One-token sequences have no `iou`/`jsd` rows; they count only in `iou_all_rows`.
    """
    per_sequence = [scores(a, p) for a, p in pairs]
    if not per_sequence:
        raise ValueError("no sequences to score")
    return average(per_sequence)


def average(per_sequence: Sequence[Scores]) -> Scores:
    """The mean of per-sequence scores (floats or arrays of one shape), NaN left out."""
    columns = {name: np.array([getattr(s, name) for s in per_sequence], dtype=np.float64) for name in FIGURES}
    return Scores(**{name: _scalar(_nanmean(values)) for name, values in columns.items()})


def _nanmean(values: np.ndarray) -> np.ndarray:
    """The mean over the first axis without NaN (NaN where every value is NaN)."""
    kept = ~np.isnan(values)
    count = kept.sum(axis=0)
    total = np.where(kept, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def _scalar(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x
