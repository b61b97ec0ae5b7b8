"""Sequences with their captured attention, held in memory for fitting and scoring.

Synthesis reads every head of every sequence many times, so it keeps one split's
attention in RAM as float16 ([layers, heads, n, n] per sequence; 300 sequences of
128 tokens of a 30 x 9 model take about 2.6 GB). For captures that must outlive the
run or exceed memory, `headcode capture` writes the on-disk store instead.
"""

from __future__ import annotations

import functools
import sys
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


def record_all(loaded, splits: Sequence[Split], progress: bool = True, layers: int | None = None, executor=LOCAL,
               shard: int = 4) -> None:
    """`record` of each split. On a Ray executor, shards of `shard` sequences of all
    the splits go to one pool of actors that each load the model once (`loaded.name`,
    on the executor's device); the arrays come back through the object store, in order."""
    from tqdm import tqdm

    from headcode.synth.capture import record_attention

    if executor.is_local:
        for split in splits:
            split.attention = [
                record_attention(loaded.model, table.ids, layers=layers)
                for table in tqdm(split.tables, desc=f"capture {split.name}", unit="seq", file=sys.stderr,
                                  disable=not progress)
            ]
        return
    from headcode.loaders.models import load_model
    from headcode.synth.tasks import record_tables

    owners = [split for split in splits for _ in range(0, len(split), shard)]
    shards = [split.tables[k:k + shard] for split in splits for k in range(0, len(split), shard)]
    parts = executor.map_with(functools.partial(load_model, loaded.name, executor.device.value), record_tables,
                              shards, layers, desc="capture", progress=progress)
    for split in splits:
        split.attention = []
    for split, part in zip(owners, parts):
        split.attention.extend(part)
