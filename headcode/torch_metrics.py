"""The row IoU of `headcode.metrics`, in torch, for fitting (differentiable, batched).

Same definition: per row, sum_j min(A_ij, P_ij) / sum_j max(A_ij, P_ij), and 1.0
where both rows are all zero. tests/test_metrics.py checks the two agree; fitting
(synth.search, synth.scoreform) maximises this and reports `headcode.metrics`.
"""

from __future__ import annotations

import torch


def row_iou(actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Per-row soft IoU of broadcastable [..., n] tensors: shape [...]."""
    # min(a, p) + max(a, p) = a + p and max(a, p) - min(a, p) = |a - p|, so one pass
    # over |a - p| gives both sums: a fit's loss and its gradient read the rows once,
    # not through two elementwise min/max and the masks of their gradients.
    total = actual.sum(-1) + predicted.sum(-1)
    gap = (actual - predicted).abs().sum(-1)
    low, high = (total - gap) / 2, (total + gap) / 2
    # clamp first: the ratio's gradient must stay finite where high is 0.
    return torch.where(high > 0, low / high.clamp_min(1e-30), torch.ones_like(high))


def mean_row_iou(actual: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """The mean of `row_iou` over the row dimension (the last but one): shape [...]."""
    return row_iou(actual, predicted).mean(-1)
