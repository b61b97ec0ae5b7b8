"""The typed core of the language: small frozen dataclasses with tuple children.

Every program, however it was written, is checked into this core (named patterns
such as `prev(1)` or `bos` are sugar and disappear here; the printer puts them
back). Nodes compare and hash by value, so two programs are the same program when
their trees are equal, and the canonical form (`headcode.dsl.canon`) makes equal
meaning into equal trees.

Meaning. A program maps a token sequence of length n to an n x n matrix P whose
row i is a probability distribution over keys j <= i (causal). Three kinds of node:

* Selectors are boolean conditions on a (query i, key j) pair. Only pairs with
  j <= i are ever considered.
* Patterns turn rows into distributions. A pattern may leave a row *empty* (all
  zero) when its selector picks no key in that row; `Fallback` and `Mix` say what
  happens then, and a whole program that would leave a row empty puts all weight
  on position 0 there (the canonical form writes that `else bos` out).
* Score factors are the numeric pieces of a `Score` (a row-wise softmax).

A *sketch* is a program with holes: `HOLE` where a number goes (a mixture or score
weight, a table entry's weight, a decay rate) and `OpenTable` where a word table's
words are to be chosen. It checks, prints and canonicalises like any program, and
means the set of programs its fillings give; it cannot run until it is filled.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

from headcode.dsl.features import CmpOp, Distance, Feature, Side, TokenClass

# --- holes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hole:
    """`?`: a number left to be fitted. All holes are equal; a sketch's holes are
    told apart by where they stand."""


HOLE = Hole()
Weight = Union[float, Hole]


# --- selectors ---------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    """`true` or `false`."""

    value: bool


@dataclass(frozen=True)
class Rel:
    """A relation between the two tokens: `key.feature OP query.other + offset`.

    The checker turns `query.x OP key.y + c` around, so the key is always on the
    left. Ordinal features relate to themselves (`key.pos` with `query.pos`);
    token ids only to token ids, with `==` or `!=` and offset 0.
    """

    feature: Feature
    op: CmpOp
    other: Feature
    offset: int


@dataclass(frozen=True)
class Threshold:
    """One token's ordinal feature against a whole number: `side.feature OP value`."""

    side: Side
    feature: Feature
    op: CmpOp
    value: int


@dataclass(frozen=True)
class Cls:
    """`key.punct`, `query.cap`, ...: a token class of one side."""

    side: Side
    cls: TokenClass


@dataclass(frozen=True)
class WordSet:
    """`key.word{the, and, ","}`: the side's normalised token text is in the set.

    `words` is sorted and free of duplicates in the canonical form.
    """

    side: Side
    words: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    arg: Selector


@dataclass(frozen=True)
class And:
    args: tuple[Selector, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Selector, ...]


Selector = Union[Const, Rel, Threshold, Cls, WordSet, Not, And, Or]
SELECTOR_TYPES = (Const, Rel, Threshold, Cls, WordSet, Not, And, Or)

# --- patterns ----------------------------------------------------------------------


class Reduce(enum.Enum):
    """How a selector's keys in a row become a distribution."""

    UNIFORM = "uniform"  # equal weight on every selected key
    NEAREST = "nearest"  # all weight on the selected key with the largest j
    EARLIEST = "earliest"  # all weight on the selected key with the smallest j
    DECAY = "decay"  # weight rate**(i - j) on selected keys, renormalised


@dataclass(frozen=True)
class Select:
    """Reduce the keys a selector picks in each row; the row is empty if it picks none.

    `rate` is used only by DECAY (0 < rate <= 1) and is 1.0 otherwise.
    """

    sel: Selector
    reduce: Reduce
    rate: Weight = 1.0


@dataclass(frozen=True)
class Fallback:
    """`P else Q else R`: each row comes from the first option not empty there."""

    options: tuple[Pattern, ...]


@dataclass(frozen=True)
class Weighted:
    """One term of a mixture: a non-negative weight times a pattern. In a sketch's
    mixture every weight is a HOLE."""

    weight: Weight
    pattern: Pattern


@dataclass(frozen=True)
class Mix:
    """`0.7*P + 0.3*Q`: per row, the weighted sum of the terms that are not empty
    there, divided by the sum of their weights (empty if every term is)."""

    terms: tuple[Weighted, ...]


@dataclass(frozen=True)
class Dist:
    """A distance factor of a score term: `dist` or `log_dist`."""

    kind: Distance


@dataclass(frozen=True)
class WordTable:
    """`key.word{the: 1.2, ",": 0.7}`: the weight of the side's normalised token
    text, 0 for text not in the table. Entries are sorted by word."""

    side: Side
    entries: tuple[tuple[str, Weight], ...]


@dataclass(frozen=True)
class OpenTable:
    """`key.word{?8}` (sketches only): a word table of at most `limit` words, which
    words and their weights both to be fitted."""

    side: Side
    limit: int


Factor = Union[Selector, Dist, WordTable, OpenTable]
TABLE_TYPES = (WordTable, OpenTable)


@dataclass(frozen=True)
class ScoreTerm:
    """`weight * f1 * f2 ...`; a selector factor counts 1 where it holds, else 0."""

    weight: Weight
    factors: tuple[Factor, ...]


@dataclass(frozen=True)
class Score:
    """`softmax(t1 + t2 + ...)`: row i is the softmax over keys j <= i of the sum of
    the terms. Never empty (an empty sum gives uniform)."""

    terms: tuple[ScoreTerm, ...]


Pattern = Union[Select, Fallback, Mix, Score]
PATTERN_TYPES = (Select, Fallback, Mix, Score)


def children(node: object) -> tuple[object, ...]:
    """The direct sub-nodes of any IR node (selectors, patterns, terms, factors)."""
    if isinstance(node, Not):
        return (node.arg,)
    if isinstance(node, (And, Or)):
        return node.args
    if isinstance(node, Select):
        return (node.sel,)
    if isinstance(node, Fallback):
        return node.options
    if isinstance(node, Mix):
        return tuple(t.pattern for t in node.terms)
    if isinstance(node, Score):
        return tuple(f for t in node.terms for f in t.factors)
    return ()


def size(node: object) -> int:
    """Number of IR nodes in a tree (the checker's size limit counts these)."""
    total, stack = 0, [node]
    while stack:
        current = stack.pop()
        total += 1
        stack.extend(children(current))
    return total


def depth(node: object) -> int:
    """Nesting depth of a tree (a leaf has depth 1)."""
    best, stack = 0, [(node, 1)]
    while stack:
        current, d = stack.pop()
        best = max(best, d)
        stack.extend((child, d + 1) for child in children(current))
    return best


def holes(node: object) -> int:
    """How many holes a tree has (an open table counts one): 0 for a program, more for a sketch."""
    count, stack = 0, [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Select):
            count += isinstance(current.rate, Hole)
        elif isinstance(current, (Mix, Score)):
            count += sum(isinstance(t.weight, Hole) for t in current.terms)
        elif isinstance(current, WordTable):
            count += sum(isinstance(w, Hole) for _, w in current.entries)
        elif isinstance(current, OpenTable):
            count += 1
        stack.extend(children(current))
    return count
