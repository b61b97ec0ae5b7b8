"""Score terms split by what their factors read, so that a term costs one pass.

A score term is `weight * f1 * f2 ...`. Most factors read one token of the pair:
a class, word set, word table or `key.pos <= 3` reads the key only (or the query
only). Evaluated per (query, key) pair, as full n x n matrices multiplied together,
such a term costs several passes over the triangle. Split instead, it is

    weight * q[i] * k[j] * r(i, j)

where q and k are the products of the query-only and key-only factors (vectors,
O(n) to build) and r is what remains: nothing, one comparison of a key and a query
feature, a distance, or (anything else) a matrix. The kernels then add the whole
term to the logits in one fused pass with r evaluated inline (`lower`, `kernels`).

Comparisons of `key.pos` with `query.pos` are *bands*: when the position column
holds the indices 0..n-1 (as every token table built from text does), they pick the
keys with `lo <= j - i <= hi`, so `prev(3)` touches n pairs, not n^2/2. `And`
factors are split into their arguments (for 0/1 values `and` is a product), so
`(query.punct and self)` is a query factor times a band.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from headcode.dsl import ir
from headcode.dsl.features import CmpOp, Distance, Feature, Side

# The lower bound of a band that has none (every band has an upper one: j - i <= 0).
UNBOUNDED = None


class Kind(enum.Enum):
    """What a term's relation r(i, j) is, i.e. how the fused pass evaluates it."""

    NONE = "none"  # r = 1
    CMP = "cmp"  # r = the comparison `relation.cmp` (a key feature against a query feature)
    DIST = "dist"  # r = i - j
    LOG_DIST = "log_dist"  # r = log(1 + i - j)
    MATRIX = "matrix"  # r = the product of `relation.factors`, computed as a matrix


@dataclass(frozen=True)
class Relation:
    """The part of a term that reads both tokens, and the band of keys it may touch.

    `lo`/`hi` bound j - i (None: unbounded below; hi <= 0 always, by causality).
    Terms with equal relations share one pass (`lower` groups them).
    """

    kind: Kind
    cmp: ir.Rel | None = None
    factors: tuple[ir.Factor, ...] = ()
    lo: int | None = UNBOUNDED
    hi: int = 0


@dataclass(frozen=True)
class SplitTerm:
    """`weight * prod(query) [i] * prod(key) [j] * relation(i, j)`."""

    weight: float
    query: tuple[ir.Factor, ...]  # one-sided factors of the query (selectors, tables)
    key: tuple[ir.Factor, ...]  # one-sided factors of the key, and constant selectors
    relation: Relation


def split(term: ir.ScoreTerm, positional: bool = True) -> SplitTerm | None:
    """The term split by sides; None when it is zero everywhere (so adds nothing).

    `positional`: whether the token table's position column is 0..n-1, which is
    what lets `key.pos` against `query.pos` become a band.
    """
    if term.weight == 0.0:
        return None
    query: list[ir.Factor] = []
    key: list[ir.Factor] = []
    rest: list[ir.Factor] = []
    lo, hi = UNBOUNDED, 0
    for factor in _conjuncts(term.factors):
        if factor == ir.Const(True):
            continue
        if factor == ir.Const(False):
            return None
        band = _band(factor) if positional else None
        if band is not None:
            lo, hi = _narrow(lo, band[0]), min(hi, band[1])
            continue
        sides = _sides(factor)
        if sides == {Side.QUERY}:
            query.append(factor)
        elif sides == {Side.KEY} or not sides:
            key.append(factor)  # a constant selector (`not false`) is a key vector of 0 or 1
        else:
            rest.append(factor)
    if lo is not UNBOUNDED and lo > hi:
        return None  # no key satisfies every band
    return SplitTerm(term.weight, tuple(query), tuple(key), _relation(rest, lo, hi))


def _conjuncts(factors: tuple[ir.Factor, ...]):
    """The factors with every `And` replaced by its arguments (0/1 values: and = product)."""
    for f in factors:
        if isinstance(f, ir.And):
            yield from _conjuncts(f.args)
        else:
            yield f


def _narrow(lo: int | None, other: int | None) -> int | None:
    """The larger of two lower bounds, either of which may be unbounded."""
    if lo is UNBOUNDED:
        return other
    return lo if other is UNBOUNDED else max(lo, other)


def _band(f: ir.Factor) -> tuple[int | None, int] | None:
    """`key.pos OP query.pos + c` as bounds on j - i, or None if f is not such a band."""
    if not (isinstance(f, ir.Rel) and f.feature is Feature.POS and f.other is Feature.POS):
        return None
    c = f.offset
    return {
        CmpOp.EQ: (c, c), CmpOp.LE: (UNBOUNDED, c), CmpOp.LT: (UNBOUNDED, c - 1),
        CmpOp.GE: (c, 0), CmpOp.GT: (c + 1, 0),
    }.get(f.op)  # NE is no band: it stays a comparison


def _sides(f: ir.Factor) -> set[Side | None]:
    """The sides a factor reads; None in the set means it relates the two."""
    if isinstance(f, ir.Dist):
        return {None}
    if isinstance(f, ir.Rel):
        return {None}
    if isinstance(f, (ir.Threshold, ir.Cls, ir.WordSet, ir.WordTable)):
        return {f.side}
    out: set[Side | None] = set()
    for child in ir.children(f):
        out |= _sides(child)
    return out


def _relation(rest: list[ir.Factor], lo: int | None, hi: int) -> Relation:
    if not rest:
        return Relation(Kind.NONE, lo=lo, hi=hi)
    if len(rest) == 1:
        f = rest[0]
        if isinstance(f, ir.Rel):
            return Relation(Kind.CMP, cmp=f, lo=lo, hi=hi)
        if isinstance(f, ir.Dist):
            kind = Kind.DIST if f.kind is Distance.DIST else Kind.LOG_DIST
            return Relation(kind, lo=lo, hi=hi)
    return Relation(Kind.MATRIX, factors=tuple(rest), lo=lo, hi=hi)
