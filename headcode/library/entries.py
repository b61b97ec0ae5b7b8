"""What a library says about each head, as typed values, and the checks of each field.

A head has one explanation per *level of detail* (`Level`): `short`, the program a
person reads, and `full`, the most faithful surrogate; each names its program by id,
the proposer it came from, and its figures on the validation and test splits. The
head also has the test IoU of the baseline programs it was compared with.

Every figure a library records is one of `FIGURES`, which says whether higher or
lower is better (replacement ranks heads by it); `SPLIT_FIELDS` is what a library
records of the text it was fitted and scored on.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from headcode.heads import Head
from headcode.library.errors import LibraryError
from headcode.loaders.corpora import SHAPES, SPLITS

ID = re.compile(r"[0-9a-f]{16}\Z")
_SOURCE = re.compile(r"[a-z][a-z0-9_+]*\Z")


class Level(enum.Enum):
    """Levels of detail: the short program people read, the full one models run."""

    SHORT = "short"
    FULL = "full"


class Better(enum.Enum):
    HIGHER = "higher"
    LOWER = "lower"


# Every figure a library may record, and which way is better.
FIGURES: Mapping[str, Better] = MappingProxyType({
    "iou": Better.HIGHER,  # mean soft row IoU over rows 1..n-1 (headcode.metrics)
    "iou_all_rows": Better.HIGHER,  # the same over rows 0..n-1 (the paper's figure)
    "jsd": Better.LOWER,  # mean row Jensen-Shannon divergence, bits
    "kl": Better.LOWER,  # KL(clean || head replaced) of the model's predictions, nats per token
    "kl_estimate": Better.LOWER,  # the same KL estimated to second order, not measured (replace.estimate)
    "ppl_increase": Better.LOWER,  # perplexity ratio - 1 with the head replaced alone
})

# The figures of what replacing a head alone costs the model (`replace --measure-heads`):
# they belong to the program they were measured with and go stale when it changes.
EFFECTS = ("kl", "kl_estimate", "ppl_increase")

# The baseline programs every head is compared with (their test IoU is recorded).
BASELINES = ("bos", "uniform", "best_single", "greedy_mixture")

# What a library records of its text: how the corpus was cut, and what that gave.
SPLIT_FIELDS = ("corpus", "shape", "max_len", "one_per_line", "seed", "counts", "sequences", "tokens")


def figures(value, what: str) -> Mapping[str, float]:
    """A checked mapping of figure name -> finite number."""
    if not isinstance(value, Mapping):
        raise LibraryError(f"{what} must be an object of figure -> number")
    out = {}
    for k in sorted(value):
        v = value[k]
        if k not in FIGURES:
            raise LibraryError(f"{what} has an unknown figure {k!r:.40} (known: {', '.join(FIGURES)})")
        out[k] = _number(v, f"{what}['{k}']")
    return MappingProxyType(out)


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise LibraryError(f"{what} must be a finite number, not {v!r:.40}")
    return float(v)


@dataclass(frozen=True)
class LevelEntry:
    """One level's explanation of a head."""

    program: str  # the program's id
    source: str  # the proposer its program came from (synth.explain.Source values)
    validation: Mapping[str, float] = field(default_factory=dict)
    test: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.program, str) or not ID.match(self.program):
            raise LibraryError(f"program must be a 16-hex-digit program id, not {self.program!r:.40}")
        if not isinstance(self.source, str) or not _SOURCE.match(self.source):
            raise LibraryError(f"source must be a proposer name like 'score', not {self.source!r:.40}")
        object.__setattr__(self, "validation", figures(self.validation, "validation"))
        object.__setattr__(self, "test", figures(self.test, "test"))


@dataclass(frozen=True)
class HeadEntry:
    """What the library says about one head: an explanation per level, and the
    test IoU of each baseline."""

    layer: int
    head: int
    levels: Mapping[Level, LevelEntry]
    baselines: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("layer", "head"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LibraryError(f"head entry {name} must be a whole number >= 0, not {v!r:.40}")
        where = f"head {self.name}"
        if not isinstance(self.levels, Mapping) or not self.levels:
            raise LibraryError(f"{where}: needs an explanation at one level at least")
        levels = {}
        for level in Level:  # in Level's order
            if level in self.levels:
                if not isinstance(self.levels[level], LevelEntry):
                    raise LibraryError(f"{where}: levels must hold LevelEntry values")
                levels[level] = self.levels[level]
        if len(levels) != len(self.levels):
            raise LibraryError(f"{where}: levels are {', '.join(m.value for m in Level)}")
        if not isinstance(self.baselines, Mapping):
            raise LibraryError(f"{where}: baselines must be an object of name -> test IoU")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise LibraryError(f"{where}: unknown baseline {unknown[0]!r:.40} (known: {', '.join(BASELINES)})")
        baselines = {k: _number(self.baselines[k], f"{where}: baselines['{k}']") for k in sorted(self.baselines)}
        object.__setattr__(self, "levels", MappingProxyType(levels))
        object.__setattr__(self, "baselines", MappingProxyType(baselines))

    @property
    def key(self) -> Head:
        return Head(self.layer, self.head)

    @property
    def name(self) -> str:
        return str(self.key)

    def __getitem__(self, level: Level) -> LevelEntry:
        return self.levels[level]

    def with_level(self, level: Level, entry: LevelEntry) -> HeadEntry:
        return HeadEntry(self.layer, self.head, {**self.levels, level: entry}, self.baselines)


def check_split(split) -> Mapping:
    """The record of how a library's corpus was cut (`loaders.corpora.SplitSpec`)."""
    if not isinstance(split, Mapping):
        raise LibraryError(f"split must be an object with {', '.join(SPLIT_FIELDS)}")
    for k in split:
        if k not in SPLIT_FIELDS:
            raise LibraryError(f"split has unknown field {k!r:.40}")
    for k in SPLIT_FIELDS:
        if k not in split:
            raise LibraryError(f"split.{k} is missing")
    if not isinstance(split["corpus"], str) or not split["corpus"]:
        raise LibraryError("split.corpus must be a non-empty string")
    if split["shape"] not in SHAPES:
        raise LibraryError(f"split.shape must be one of {', '.join(SHAPES)}, not {split['shape']!r:.40}")
    if not isinstance(split["one_per_line"], bool):
        raise LibraryError("split.one_per_line must be true or false")
    for k, low in (("max_len", 1), ("seed", None)):
        v = split[k]
        if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
            raise LibraryError(f"split.{k} must be a whole number{f' >= {low}' if low else ''}, not {v!r:.40}")
    out = {k: split[k] for k in ("corpus", "shape", "max_len", "one_per_line", "seed")}
    for k in ("counts", "sequences", "tokens"):
        v = split[k]
        if not isinstance(v, Mapping) or set(v) != set(SPLITS) or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in v.values()):
            raise LibraryError(f"split.{k} must give a whole number >= 0 for each of {', '.join(SPLITS)}")
        out[k] = MappingProxyType({s: v[s] for s in SPLITS})
    return MappingProxyType(out)
