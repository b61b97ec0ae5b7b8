"""Scoring programs against captured heads with `headcode.metrics`.

Each head's candidate programs are run by the kernels on every sequence (all
distinct programs of a call in one kernel call per sequence) and scored with
`metrics.scores`; sequences weigh equally (`metrics.average`), as in the paper.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np

from headcode import metrics
from headcode.compiler import ProgramBatch
from headcode.dsl import Program
from headcode.heads import Head
from headcode.metrics import Scores
from headcode.synth.data import Split

Key = TypeVar("Key", bound=Hashable)


def score_heads(split: Split, programs: Mapping[Head, Program], progress: bool = False,
                desc: str = "score") -> dict[Head, Scores]:
    """The scores of each head's program on `split`."""
    scored = score_candidates(split, {h: {0: p} for h, p in programs.items()}, progress, desc)
    return {h: s[0] for h, s in scored.items()}


CHUNK = 512  # (head, candidate) pairs scored at once: bounds the memory of long sequences


def score_candidates(split: Split, candidates: Mapping[Head, Mapping[Key, Program]], progress: bool = False,
                     desc: str = "score", jsd: bool = True) -> dict[Head, dict[Key, Scores]]:
    """The scores of every named candidate of every head: result[head][key]
    (`jsd=False`: IoU only, the JSD left NaN, for choosing among candidates)."""
    from tqdm import tqdm

    # Equal programs (by id) run once.
    pool = list(dict.fromkeys(p for options in candidates.values() for p in options.values()))
    slot = {p: k for k, p in enumerate(pool)}
    pairs = [(h, key, slot[p]) for h, options in candidates.items() for key, p in options.items()]
    layers = np.array([h[0] for h, _, _ in pairs], dtype=np.int64)
    heads = np.array([h[1] for h, _, _ in pairs], dtype=np.int64)
    which = np.array([k for _, _, k in pairs], dtype=np.int64)
    batch = ProgramBatch(pool)
    per_sequence = []
    for k in tqdm(range(len(split)), desc=desc, unit="seq", file=sys.stderr, disable=not progress or not pairs):
        matrices = batch.evaluate(split.tables[k])
        parts = [metrics.scores(split.attention[k][layers[c:c + CHUNK], heads[c:c + CHUNK]].astype(np.float64),
                                matrices[which[c:c + CHUNK]], jsd=jsd) for c in range(0, len(pairs), CHUNK)]
        per_sequence.append(Scores(*(np.concatenate([np.atleast_1d(getattr(part, f)) for part in parts])
                                     for f in metrics.FIGURES)))
    mean = metrics.average(per_sequence) if per_sequence else None
    out: dict[Head, dict[Key, Scores]] = {h: {} for h in candidates}
    for index, (h, key, _) in enumerate(pairs):
        out[h][key] = Scores(*(float(getattr(mean, f)[index]) if mean else float("nan") for f in metrics.FIGURES))
    return out


def mean_of(scores: Mapping[Head, Scores], figure: str = "iou") -> float:
    """The mean of one figure over heads (NaN left out)."""
    values = [getattr(s, figure) for s in scores.values() if not np.isnan(getattr(s, figure))]
    return float(np.mean(values)) if values else float("nan")
