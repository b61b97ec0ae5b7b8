"""headcode.metrics: known values, and properties over random causal attention matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headcode import metrics


@st.composite
def causal_pairs(draw, max_n: int = 12, stack: bool = False):
    """Two row-stochastic lower-triangular [n, n] matrices (or [2, 3, n, n] stacks), some rows sparse."""
    n = draw(st.integers(1, max_n))
    shape = (2, 3, n, n) if stack else (n, n)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        w = rng.random(shape) * (rng.random(shape) < draw(st.floats(0.2, 1.0)))
        w = np.tril(w)
        idx = np.arange(n)
        w[..., idx, idx] += 1e-3  # every row keeps some mass
        out.append(w / w.sum(axis=-1, keepdims=True))
    return out


def test_known_values():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    # Row 1: min sums to 0.5, max to 1.5.
    assert metrics.row_iou(a, p) == pytest.approx([1.0, 1 / 3])
    s = metrics.scores(a, p)
    assert s.iou == pytest.approx(1 / 3)
    assert s.iou_all_rows == pytest.approx((1 + 1 / 3) / 2)
    # JSD of (0.5, 0.5) and (1, 0) in bits: m = (0.75, 0.25).
    kl_a = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_p = math.log2(1 / 0.75)
    assert s.jsd == pytest.approx((kl_a + kl_p) / 2)


def test_disjoint_rows_score_zero_and_one_bit():
    a = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    p = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])
    assert metrics.iou(a, p) == 0.0
    assert metrics.jsd(a, p) == pytest.approx(1.0)
    assert metrics.iou(a, p, all_rows=True) == pytest.approx(1 / 3)


def test_one_token_sequences_have_no_iou_rows():
    one = np.ones((1, 1))
    s = metrics.scores(one, one)
    assert math.isnan(s.iou) and s.iou_all_rows == 1.0
    # Averaging over sequences leaves them out of `iou` but not of `iou_all_rows`.
    two_a = np.array([[1.0, 0], [1.0, 0]])
    two_p = np.array([[1.0, 0], [0, 1.0]])
    mean = metrics.mean_scores([(one, one), (two_a, two_p)])
    assert mean.iou == 0.0
    assert mean.iou_all_rows == pytest.approx(0.75)


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        metrics.iou(np.eye(3), np.eye(4))
    with pytest.raises(ValueError):
        metrics.iou(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        metrics.mean_scores([])


@settings(max_examples=150, deadline=None)
@given(causal_pairs())
def test_iou_properties(pair):
    a, p = pair
    assert np.allclose(metrics.row_iou(a, a), 1.0)
    assert np.allclose(metrics.row_iou(a, p), metrics.row_iou(p, a))
    rows = metrics.row_iou(a, p)
    assert np.all((rows >= 0) & (rows <= 1 + 1e-12))
    # Row 0 of two causal matrices is one-hot on key 0 in both: the free 1.0.
    assert rows[0] == pytest.approx(1.0)


@settings(max_examples=150, deadline=None)
@given(causal_pairs())
def test_jsd_properties(pair):
    a, p = pair
    assert np.allclose(metrics.row_jsd(a, a), 0.0, atol=1e-12)
    assert np.allclose(metrics.row_jsd(a, p), metrics.row_jsd(p, a))
    rows = metrics.row_jsd(a, p)
    assert np.all((rows >= 0) & (rows <= 1))
    # Identical rows have zero divergence and full overlap, and rows that differ
    # have neither. (Near-identical rows are left out: JSD falls with the square of
    # a difference and IoU only linearly, so no pair of thresholds separates them.)
    iou, apart = metrics.row_iou(a, p), np.abs(a - p).sum(axis=1)
    same = apart == 0
    assert np.all(rows[same] < 1e-12) and np.allclose(iou[same], 1.0)
    far = apart > 1e-4
    assert np.all(rows[far] > 1e-12) and np.all(iou[far] < 1 - 1e-6)


@settings(max_examples=50, deadline=None)
@given(causal_pairs(stack=True))
def test_stacks_score_each_matrix(pair):
    a, p = pair
    stacked = metrics.iou(a, p)
    assert stacked.shape == a.shape[:2]
    for layer in range(a.shape[0]):
        for head in range(a.shape[1]):
            s = metrics.scores(a[layer, head], p[layer, head])
            assert stacked[layer, head] == pytest.approx(s.iou, nan_ok=True)
            assert metrics.iou(a, p, all_rows=True)[layer, head] == pytest.approx(s.iou_all_rows)
            assert metrics.jsd(a, p)[layer, head] == pytest.approx(s.jsd, nan_ok=True)


@given(causal_pairs(stack=True))
@settings(max_examples=50, deadline=None)
def test_torch_row_iou_agrees_with_numpy(pair):
    """Fitting maximises torch_metrics.row_iou and reports metrics.row_iou: they must be one measure."""
    import torch

    from headcode import torch_metrics

    actual, predicted = pair
    fitted = torch_metrics.row_iou(torch.from_numpy(actual), torch.from_numpy(predicted)).numpy()
    np.testing.assert_allclose(fitted, metrics.row_iou(actual, predicted), rtol=1e-12, atol=1e-12)
    means = torch_metrics.mean_row_iou(torch.from_numpy(actual), torch.from_numpy(predicted)).numpy()
    np.testing.assert_allclose(means, metrics.iou(actual, predicted, all_rows=True), rtol=1e-12, atol=1e-12)


def test_torch_row_iou_of_empty_rows_is_one_with_finite_gradient():
    import torch

    from headcode import torch_metrics

    actual = torch.zeros(3, 3)
    predicted = torch.zeros(3, 3, requires_grad=True)
    value = torch_metrics.row_iou(actual, predicted)
    assert value.tolist() == [1.0] * 3
    assert metrics.row_iou(actual.numpy(), predicted.detach().numpy()).tolist() == [1.0] * 3
    value.sum().backward()
    assert torch.isfinite(predicted.grad).all()
