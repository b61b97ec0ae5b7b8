"""The surface syntax tree: what the parser read, before any meaning is given.

Nodes are generic (calls, names, attributes, operators) and carry a `Span` so the
checker can point at the text; the span does not take part in equality. Chains of
one operator (`a + b + c`, `p else q else r`) are single n-ary nodes, so a long
mixture is wide, not deep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

from headcode.dsl.errors import Span

_span = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Number:
    text: str
    span: Span | None = _span

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def is_integer(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True)
class Hole:
    """`?`: a number a sketch leaves to be fitted."""

    span: Span | None = _span


HOLE = "?"  # the weight of a table entry `word: ?` (entries hold a float, None in a set, or this)


@dataclass(frozen=True)
class Name:
    name: str
    span: Span | None = _span


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span | None = _span


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    span: Span | None = _span


@dataclass(frozen=True)
class Attr:
    """`key.pos`, `query.punct`: side and attribute are checked later."""

    side: str
    attr: str
    span: Span | None = _span


@dataclass(frozen=True)
class TableLit:
    """`key.word{the: 1.2, ",": 0.7}` or the set `key.word{the, and}`.

    Entries are (word, weight) pairs, the weight None in a set. A table may hold
    hundreds of entries whose positions only an error message needs, so they are
    kept apart: `entry_spans[k]` is entry k's (the fast parser works them out on
    first use).
    """

    side: str
    attr: str
    entries: tuple[tuple[str, float | str | None], ...]  # a weight, None (a set) or HOLE
    span: Span | None = _span
    entry_spans: Sequence[Span] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class OpenTable:
    """`key.word{?8}`: a sketch's word table whose words (at most `limit`) the fit chooses."""

    side: str
    attr: str
    limit: str  # the digits after `?`
    span: Span | None = _span


@dataclass(frozen=True)
class Negate:
    """Unary minus (or a redundant unary plus, with `minus=False`)."""

    arg: Node
    minus: bool = True
    span: Span | None = _span


@dataclass(frozen=True)
class Not:
    arg: Node
    span: Span | None = _span


@dataclass(frozen=True)
class Compare:
    left: Node
    op: str
    right: Node
    span: Span | None = _span


@dataclass(frozen=True)
class SumChain:
    """`a + b - c`: the first item has sign '+'."""

    items: tuple[tuple[str, Node], ...]
    span: Span | None = _span


@dataclass(frozen=True)
class ProductChain:
    items: tuple[Node, ...]
    span: Span | None = _span


@dataclass(frozen=True)
class AndChain:
    items: tuple[Node, ...]
    span: Span | None = _span


@dataclass(frozen=True)
class OrChain:
    items: tuple[Node, ...]
    span: Span | None = _span


@dataclass(frozen=True)
class ElseChain:
    items: tuple[Node, ...]
    span: Span | None = _span


Node = Union[
    Number, Hole, Name, Bool, Call, Attr, TableLit, OpenTable, Negate, Not, Compare,
    SumChain, ProductChain, AndChain, OrChain, ElseChain,
]


@dataclass(frozen=True)
class Definition:
    """`name = expr` in a program file, with the full-line comments right above it."""

    name: str
    body: Node
    comments: tuple[str, ...] = ()
    span: Span | None = _span
