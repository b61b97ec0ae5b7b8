"""The search proposer: named patterns, the best single one per head, and greedy
sparse mixtures of up to k of them with weights on the simplex, fitted to row IoU.

Every candidate is evaluated once per training sequence by the compiled kernels
(one kernel call for all of them); the IoU of every head against every candidate,
and of every greedy extension, is computed in torch over all heads of a layer at
once. Weights are searched on a grid of tenths, which the canonical form keeps
exactly, so heads that land on the same mixture share one program.

The same greedy step also extends a head's own program (a fitted softmax, say)
with named patterns it cannot express (`extend`): `0.8*softmax(...) + 0.2*last(punct)`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from headcode.compiler import ProgramBatch
from headcode.dsl import Program, ir
from headcode.heads import Head
from headcode.synth.data import Split
from headcode.torch_metrics import mean_row_iou

STEPS = np.arange(1, 10) / 10  # the weight of a new term: 0.1 .. 0.9
PARTNERS = 8  # candidates tried as the next term of each head's mixture
ROWS = 48  # query rows per sequence the search scores (a fixed random sample beyond that)
MIN_GAIN = 1e-4  # a new term must raise training IoU by this much


@dataclass(frozen=True)
class SearchResult:
    """Per head (layer-major order): the best single pattern and the greedy mixture."""

    single: list[Program]
    single_iou: np.ndarray  # training IoU of the best single pattern
    mixture: list[Program]
    mixture_iou: np.ndarray


class Sample:
    """Training rows the search scores: every pattern's rows and every head's rows.

    At most `max_sequences` sequences and ROWS query rows of each (rows 1..n-1,
    sampled with `seed` when there are more): row IoU is a mean over rows, so a
    fixed sample estimates it without bias at a fraction of the cost.
    """

    def __init__(self, split: Split, patterns: Sequence[Program], max_sequences: int = 48, seed: int = 0):
        import torch

        rng = np.random.default_rng(seed)
        self.patterns = list(patterns)
        self.tables, self.rows, self.candidates, self.targets = [], [], [], []
        batch = ProgramBatch(self.patterns)
        for k in range(min(len(split), max_sequences)):
            n = len(split.tables[k])
            rows = np.arange(1, n) if n - 1 <= ROWS else np.sort(rng.choice(np.arange(1, n), ROWS, replace=False))
            self.tables.append(split.tables[k])
            self.rows.append(rows)
            self.candidates.append(torch.from_numpy(batch.evaluate(split.tables[k])[:, rows].astype(np.float32)))
            self.targets.append(torch.from_numpy(split.attention[k][:, :, rows].astype(np.float32)))

    def __len__(self) -> int:
        return len(self.tables)

    def rows_of(self, programs: Sequence[Program]):
        """Per sequence, float32 [len(programs), rows, n] of the given programs."""
        import torch

        batch = ProgramBatch(programs)
        return [torch.from_numpy(batch.evaluate(t)[:, r].astype(np.float32)) for t, r in zip(self.tables, self.rows)]


def _greedy_step(sample: Sample, groups, mixes, current):
    """One greedy step for groups of heads (one group per layer).

    `groups` is a list of (layer, head slice); `mixes[k]` holds every head's current
    mixture rows on sequence k ([total, rows, n]). Returns, per head, the best new
    (gain, pattern index, weight) or None where nothing beats `current` by MIN_GAIN.
    """
    import torch

    count, total = len(sample), len(current)
    # Partners: the candidates that cover most of what the mixture still misses
    # (the positive residual), not the best single ones, which mostly repeat it.
    cover = torch.zeros(total, len(sample.patterns))
    for layer, hs in groups:
        for k in range(count):
            missing = (sample.targets[k][layer] - mixes[k][hs]).clamp(min=0)
            cover[hs] += torch.minimum(missing[:, None], sample.candidates[k][None]).sum(-1).mean(-1) / count
    partners = cover.topk(min(PARTNERS, len(sample.patterns)), dim=1).indices
    steps = torch.tensor(STEPS, dtype=torch.float32)[None, None, :, None, None]
    gain = torch.zeros(total, partners.shape[1], len(STEPS))
    for layer, hs in groups:
        for k in range(count):
            trial = torch.lerp(mixes[k][hs][:, None, None], sample.candidates[k][partners[hs]][:, :, None], steps)
            gain[hs] += mean_row_iou(sample.targets[k][layer][:, None, None], trial) / count
    value, where = gain.reshape(total, -1).max(1)
    out = []
    for h in range(total):
        if value[h] > current[h] + MIN_GAIN:
            p, s = divmod(int(where[h]), len(STEPS))
            out.append((float(value[h]), int(partners[h, p]), float(STEPS[s])))
        else:
            out.append(None)
    return out


def search(sample: Sample, layers: Sequence[int], heads: int, max_terms: int = 3,
           progress: bool = True) -> SearchResult:
    """Best single pattern and greedy mixture for every head of `layers` (others get the first pattern)."""
    import torch
    from tqdm import tqdm

    patterns, count = sample.patterns, len(sample)
    layers = sorted(set(layers))
    total = max(layers, default=-1) * heads + heads
    groups = [(layer, slice(layer * heads, (layer + 1) * heads)) for layer in layers]
    bar = tqdm(total=len(layers) * max_terms, desc="search mixtures", unit="step", file=sys.stderr,
               disable=not progress)
    single_score = torch.zeros(total, len(patterns))
    for layer, hs in groups:
        for k in range(count):
            single_score[hs] += mean_row_iou(sample.targets[k][layer][:, None], sample.candidates[k][None]) / count
        bar.update(1)
    best = single_score.argmax(1)

    # terms[h]: (weight, pattern index) pairs whose weights sum to 1.
    terms = [[(1.0, int(best[h]))] for h in range(total)]
    current = single_score.max(1).values.clone()
    for _ in range(max_terms - 1):
        mixes = [torch.stack([sum(w * c[i] for w, i in t) for t in terms]) for c in sample.candidates]
        for h, step in enumerate(_greedy_step(sample, groups, mixes, current)):
            if step is not None:
                value, index, w = step
                terms[h] = [(old * (1 - w), i) for old, i in terms[h]] + [(w, index)]
                current[h] = value
        bar.update(len(layers))
    bar.close()
    mixtures = [_mixture([(w, patterns[i]) for w, i in t]) for t in terms]
    return SearchResult([patterns[int(b)] for b in best], single_score.max(1).values.numpy(), mixtures,
                        current.numpy())


def extend(sample: Sample, programs: Mapping[Head, Program], heads: int, max_extra: int = 1,
           progress: bool = True) -> dict[Head, Program]:
    """Each head's program mixed with up to `max_extra` named patterns where that
    raises training IoU; heads where nothing helps keep their program."""
    import torch

    layers = sorted({l for l, _ in programs})
    total = max(layers, default=-1) * heads + heads
    groups = [(layer, slice(layer * heads, (layer + 1) * heads)) for layer in layers]
    keys = list(programs)
    slot = {key: key[0] * heads + key[1] for key in keys}
    own = sample.rows_of([programs[key] for key in keys])
    count = len(sample)
    mixes = []
    for k in range(count):
        m = torch.zeros(total, *own[k].shape[1:])
        for j, key in enumerate(keys):
            m[slot[key]] = own[k][j]
        mixes.append(m)
    current = torch.full((total,), float("inf"))  # heads not asked for never change
    for key in keys:
        current[slot[key]] = sum(float(mean_row_iou(sample.targets[k][key[0], key[1]], mixes[k][slot[key]]))
                                 for k in range(count)) / count
    terms: dict[Head, list[tuple[float, Program]]] = {key: [(1.0, programs[key])] for key in keys}
    for _ in range(max_extra):
        steps = _greedy_step(sample, groups, mixes, current)
        for key in keys:
            step = steps[slot[key]]
            if step is None:
                continue
            value, index, w = step
            terms[key] = [(old * (1 - w), p) for old, p in terms[key]] + [(w, sample.patterns[index])]
            current[slot[key]] = value
            for k in range(count):
                mixes[k][slot[key]] = torch.lerp(mixes[k][slot[key]], sample.candidates[k][index], w)
    return {key: _mixture(t) for key, t in terms.items()}


def _mixture(terms: Sequence[tuple[float, Program]]) -> Program:
    if len(terms) == 1:
        return terms[0][1]
    return Program.of(ir.Mix(tuple(ir.Weighted(float(w), p.ir) for w, p in terms)))
