"""Sequences with their captured attention, held in memory for fitting and scoring.

Synthesis reads every head of every sequence many times, so it keeps one split's
attention in RAM as float16 ([layers, heads, n, n] per sequence; 300 sequences of
128 tokens of a 30 x 9 model take about 2.6 GB). For captures that must outlive the
run or exceed memory, `headcode capture` writes the on-disk store instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from headcode.executor import LOCAL


@dataclass
class Split:
    """One split's token tables and, once captured, their attention."""

    name: str
    tables: list = field(default_factory=list)  # headcode.compiler.TokenTable
    texts: list[str] = field(default_factory=list)
    attention: list[np.ndarray] = field(default_factory=list)  # float16 [layers, heads, n, n]

    def __len__(self) -> int:
        return len(self.tables)

    @property
    def tokens(self) -> int:
        return sum(len(t) for t in self.tables)

    def head(self, k: int, layer: int, head: int) -> np.ndarray:
        return self.attention[k][layer, head].astype(np.float64)


def cut(loaded, spec, names=("train", "validation", "test")) -> dict[str, Split]:
    """The splits `names` of the corpus as `spec` (a loaders.corpora.SplitSpec) cuts it
    for `loaded`'s tokenizer: the cut a library records and is read back with."""
    stream = spec.stream(loaded.tokenizer, loaded.add_special_tokens, splits=names)
    return gather(stream, {name: spec.counts[name] for name in names})


def gather(sequences: Iterable, limits: dict[str, int]) -> dict[str, Split]:
    """Sequences (loaders.corpora.Sequence) sorted into splits, at most limits[split] each.

    Stops reading as soon as every split is full, so a large corpus costs little.
    """
    splits = {name: Split(name) for name in limits}
    for seq in sequences:
        split = splits.get(seq.split)
        if split is not None and len(split) < limits[seq.split] and len(seq.table) >= 2:
            split.tables.append(seq.table)
            split.texts.append(seq.text)
        if all(len(s) >= limits[name] for name, s in splits.items()):
            break
    return splits


def record(loaded, split: Split, progress: bool = True, layers: int | None = None, executor=LOCAL) -> Split:
    """Run the model on every sequence of `split` and keep its attention (with `layers`,
    only the first `layers` layers are run and kept: `capture.record_attention`)."""
    record_all(loaded, [split], progress, layers, executor)
    return split


def record_all(loaded, splits: Sequence[Split], progress: bool = True, layers: int | None = None,
               executor=LOCAL) -> None:
    """`record` of each split, in forwards of a few sequences of similar lengths
    (`dsl.tokens.by_length`). On a Ray executor, those forwards go to one pool of actors
    that each load the model once (`loaded.name`, on the executor's device); the
    arrays come back through the object store. Either way the same forwards run, so
    the same numbers come back."""
    from headcode.loaders.models import load_model
    from headcode.dsl.tokens import by_length
    from headcode.synth.capture import BATCH
    from headcode.synth.tasks import record_tables

    owners = [(split, group) for split in splits for group in by_length(split.tables, BATCH)]
    shards = [[split.tables[k] for k in group] for split, group in owners]
    make = (lambda: loaded) if executor.is_local else functools.partial(load_model, loaded.name,
                                                                         executor.device.value)
    parts = executor.map_with(make, record_tables, shards, layers, desc="capture", progress=progress)
    for split in splits:
        split.attention = [None] * len(split)
    for (split, group), part in zip(owners, parts):
        for k, attention in zip(group, part):
            split.attention[k] = attention
