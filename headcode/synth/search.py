"""The search proposer: named patterns, the best single one per head, and greedy
sparse mixtures of up to k of them with weights on the simplex, fitted to row IoU.

Every candidate is evaluated once per training sequence by the compiled kernels
(one kernel call for all of them); the IoU of every head against every candidate,
and of every greedy extension, is computed in torch over all heads of a layer at
once. Weights are searched on a grid of tenths, which the canonical form keeps
exactly, so heads that land on the same mixture share one program.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from headcode.compiler import ProgramBatch
from headcode.dsl import canonical, ir
from headcode.synth.data import Split

STEPS = np.arange(1, 10) / 10  # the weight of a new term: 0.1 .. 0.9
PARTNERS = 8  # candidates tried as the next term of each head's mixture
ROWS = 48  # query rows per sequence the search scores (a fixed random sample beyond that)


@dataclass(frozen=True)
class SearchResult:
    """Per head (layer-major order): the best single pattern and the greedy mixture."""

    single: list[ir.Pattern]
    single_iou: np.ndarray  # training IoU of the best single pattern
    mixture: list[ir.Pattern]
    mixture_iou: np.ndarray


def _row_iou(a, b):
    """Mean soft IoU over the rows given: a, b broadcastable [..., rows, n]."""
    import torch

    inter = torch.minimum(a, b).sum(-1)
    union = torch.maximum(a, b).sum(-1).clamp(min=1e-12)
    return (inter / union).mean(-1)


def search(split: Split, patterns: Sequence[ir.Pattern], layers: Sequence[int], heads: int, max_terms: int = 3,
           max_sequences: int = 48, progress: bool = True, seed: int = 0) -> SearchResult:
    """Best single pattern and greedy mixture for every head of `layers` (others get `bos`).

    Scores use at most `max_sequences` training sequences and ROWS query rows of
    each (rows 1..n-1, sampled with `seed` when there are more): row IoU is a mean
    over rows, so a fixed sample estimates it without bias at a fraction of the cost.
    """
    import torch
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    count = min(len(split), max_sequences)
    batch = ProgramBatch(patterns)
    candidates, targets = [], []
    for k in range(count):
        n = len(split.tables[k])
        rows = np.arange(1, n) if n - 1 <= ROWS else np.sort(rng.choice(np.arange(1, n), ROWS, replace=False))
        candidates.append(torch.from_numpy(batch.evaluate(split.tables[k])[:, rows].astype(np.float32)))
        targets.append(torch.from_numpy(split.attention[k][:, :, rows].astype(np.float32)))

    layers = sorted(set(layers))
    total = max(layers, default=-1) * heads + heads
    single_score = torch.zeros(total, len(patterns))
    bar = tqdm(total=len(layers) * max_terms, desc="search mixtures", unit="step", file=sys.stderr,
               disable=not progress)
    for layer in layers:
        for k in range(count):
            score = _row_iou(targets[k][layer][:, None], candidates[k][None])  # [heads, patterns]
            single_score[layer * heads: (layer + 1) * heads] += score / count
        bar.update(1)
    best = single_score.argmax(1)

    # Greedy: terms[h] is a list of (weight, pattern index) whose weights sum to 1.
    terms = [[(1.0, int(best[h]))] for h in range(total)]
    current = single_score.max(1).values.clone()
    steps = torch.tensor(STEPS, dtype=torch.float32)[None, None, :, None, None]
    for _ in range(max_terms - 1):
        # Partners: the candidates that cover most of what the mixture still misses
        # (the positive residual), not the best single ones, which mostly repeat it.
        cover = torch.zeros(total, len(patterns))
        for layer in layers:
            hs = slice(layer * heads, (layer + 1) * heads)
            for k in range(count):
                missing = (targets[k][layer] - _mixture_matrices(terms[hs], candidates[k])).clamp(min=0)
                cover[hs] += torch.minimum(missing[:, None], candidates[k][None]).sum(-1).mean(-1) / count
        partners = cover.topk(min(PARTNERS, len(patterns)), dim=1).indices
        gain = torch.zeros(total, partners.shape[1], len(STEPS))
        for layer in layers:
            hs = slice(layer * heads, (layer + 1) * heads)
            for k in range(count):
                mix = _mixture_matrices(terms[hs], candidates[k])  # [heads, rows, n]
                cand = candidates[k][partners[hs]]  # [heads, P, rows, n]
                trial = torch.lerp(mix[:, None, None], cand[:, :, None], steps)
                gain[hs] += _row_iou(targets[k][layer][:, None, None], trial) / count
            bar.update(1)
        value, where = gain.reshape(total, -1).max(1)
        for h in range(total):
            if value[h] > current[h] + 1e-4:
                p, s = divmod(int(where[h]), len(STEPS))
                w = float(STEPS[s])
                terms[h] = [(old * (1 - w), idx) for old, idx in terms[h]] + [(w, int(partners[h, p]))]
                current[h] = value[h]
    bar.close()
    mixtures = [_mixture_program(t, patterns) for t in terms]
    return SearchResult([patterns[int(b)] for b in best], single_score.max(1).values.numpy(), mixtures,
                        current.numpy())


def _mixture_matrices(all_terms, candidates):
    import torch

    out = torch.zeros(len(all_terms), *candidates.shape[1:])
    for h, terms in enumerate(all_terms):
        for weight, idx in terms:
            out[h] += weight * candidates[idx]
    return out


def _mixture_program(terms, patterns) -> ir.Pattern:
    if len(terms) == 1:
        return patterns[terms[0][1]]
    return canonical(ir.Mix(tuple(ir.Weighted(float(w), patterns[idx]) for w, idx in terms)))
