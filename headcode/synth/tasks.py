"""The units of work `explain` and `score` hand to an executor (`headcode.executor`).

Module-level functions, so that Ray ships them by reference. Each takes what one
task needs and no more: a score-form fit one layer's attention, a group's short
search its members' sampled rows, a scoring shard one layer's candidates; what all
tasks read (the fit's batches, a split to score on) is a shared argument, put into
the object store once. Each returns plain data; the driver merges it in the order
the in-process loop would have produced it, so a library is the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from headcode.heads import Head
from headcode.synth import scoreform, short
from headcode.synth.data import Split
from headcode.synth.scoring import score_candidates


def record_tables(loaded, tables: Sequence, layers: int | None) -> list[np.ndarray]:
    """The attention of each token table in one forward (`capture.record_batch`): a shard of a split."""
    from headcode.synth.capture import record_batch

    return record_batch(loaded.model, [table.ids for table in tables], layers=layers)


def layer_items(split: Split, layers: Sequence[int]) -> list[tuple[int, list[np.ndarray]]]:
    """(layer, each sequence's [heads, n, n] of it): views, so nothing is copied in process."""
    return [(layer, [a[layer] for a in split.attention]) for layer in layers]


def fit_layer(item: tuple[int, list[np.ndarray]], prepared: list, heads_per_layer: int, vocab_size: int,
              fit: scoreform.FitSettings) -> list[scoreform.HeadParameters]:
    """`scoreform.fit_layer` of one layer, from that layer's attention only."""
    layer, arrays = item
    return scoreform.fit_layer(prepared, lambda k: {layer: arrays[k]}, layer, heads_per_layer, vocab_size, fit)


def grow(item: tuple[list[Head], dict], base: short.Rows, vocab: Sequence[str],
         settings: short.ShortSettings) -> dict[Head, list[short.Step]]:
    """`short.paths` of one group of heads."""
    members, targets = item
    return short.paths(base.with_targets(targets), members, vocab, settings)


def polish(item: tuple[list[Head], tuple, list, dict], base: short.Rows, vocab: Sequence[str],
           settings: short.ShortSettings) -> dict[Head, object]:
    """`short.fill` of the heads that share one list of atoms."""
    members, atoms, start, targets = item
    return short.fill(base.with_targets(targets), members, atoms, vocab, start, settings)


def score_part(candidates: Mapping, split: Split, jsd: bool) -> dict:
    return score_candidates(split, candidates, jsd=jsd)


def scored(executor, split, candidates: Mapping, progress: bool = False, desc: str = "score",
           jsd: bool = True) -> dict:
    """`score_candidates` of `split` (or a handle `executor.put` made of it): in process
    one call, as before; elsewhere one task per layer's heads, merged in the given order."""
    if executor.is_local:
        return score_candidates(split, candidates, progress, desc, jsd=jsd)
    layers: dict[int, dict] = {}
    for h, options in candidates.items():
        layers.setdefault(h[0], {})[h] = options
    found: dict = {}
    for part in executor.map(score_part, list(layers.values()), split, jsd, desc=desc, progress=progress):
        found.update(part)
    return {h: found[h] for h in candidates}
