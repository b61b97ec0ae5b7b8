"""The reference evaluator: the meaning of a program, in plain NumPy.

This is the definition the compiled kernels are tested against (property tests in
tests/test_properties.py), so it favours being obviously right over being fast:
one small function per IR node, whole-matrix NumPy operations, no shared state.

Conventions. Every intermediate is an n x n float matrix that is zero above the
diagonal (keys j > i never count). A selector gives a 0/1 mask; a pattern gives
rows that are distributions or all zero ("empty" rows, see `headcode.dsl.ir`); a
score factor gives numbers. The whole program's empty rows put all weight on
position 0.
"""

from __future__ import annotations

import functools

import numpy as np

from headcode.dsl import Program, ir
from headcode.dsl.features import CmpOp, Distance, Side
from headcode.dsl.tokens import TokenTable

COMPARE = {
    CmpOp.EQ: np.equal, CmpOp.NE: np.not_equal, CmpOp.LT: np.less,
    CmpOp.LE: np.less_equal, CmpOp.GT: np.greater, CmpOp.GE: np.greater_equal,
}


def reference_evaluate(program: Program | ir.Pattern, table: TokenTable) -> np.ndarray:
    """The program's float64[n, n] attention matrix on one token sequence. Any core
    tree has a meaning, canonical or not, so trees are taken as well as programs."""
    n = len(table)
    if n == 0:
        return np.zeros((0, 0))
    if isinstance(program, Program):
        program.require_filled("be evaluated")
    elif ir.holes(program):
        raise ValueError("a sketch (a tree with holes) cannot be evaluated until it is filled")
    rows = _pattern(program.ir if isinstance(program, Program) else program, table)
    empty = rows.sum(axis=1) == 0
    rows[empty, 0] = 1.0
    return rows


def _causal(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n), dtype=bool))


def _side_values(values: np.ndarray, side: Side) -> np.ndarray:
    """A per-token vector as an n x n matrix read from the key (column) or query (row)."""
    n = len(values)
    return np.broadcast_to(values[None, :] if side is Side.KEY else values[:, None], (n, n))


# --- selectors: bool[n, n], False above the diagonal ---------------------------


@functools.singledispatch
def _selector(sel, table: TokenTable) -> np.ndarray:
    raise TypeError(f"not a selector: {sel!r}")


@_selector.register
def _(sel: ir.Const, table):
    return _causal(len(table)) & sel.value


@_selector.register
def _(sel: ir.Threshold, table):
    values = _side_values(table.column(sel.feature).astype(np.float64), sel.side)
    return _causal(len(table)) & COMPARE[sel.op](values, float(sel.value))


@_selector.register
def _(sel: ir.Rel, table):
    key = _side_values(table.column(sel.feature).astype(np.float64), Side.KEY)
    query = _side_values(table.column(sel.other).astype(np.float64), Side.QUERY)
    return _causal(len(table)) & COMPARE[sel.op](key, query + sel.offset)


@_selector.register
def _(sel: ir.Cls, table):
    return _causal(len(table)) & (_side_values(table.column(sel.cls), sel.side) == 1)


@_selector.register
def _(sel: ir.WordSet, table):
    members = frozenset(sel.words)
    hits = np.array([t in members for t in table.texts], dtype=bool)
    return _causal(len(table)) & _side_values(hits, sel.side)


@_selector.register
def _(sel: ir.Not, table):
    return _causal(len(table)) & ~_selector(sel.arg, table)


@_selector.register
def _(sel: ir.And, table):
    out = _causal(len(table))
    for arg in sel.args:
        out = out & _selector(arg, table)
    return out


@_selector.register
def _(sel: ir.Or, table):
    out = np.zeros((len(table), len(table)), dtype=bool)
    for arg in sel.args:
        out = out | _selector(arg, table)
    return out


# --- patterns: float[n, n], rows are distributions or all zero -------------------


@functools.singledispatch
def _pattern(p, table: TokenTable) -> np.ndarray:
    raise TypeError(f"not a pattern: {p!r}")


@_pattern.register
def _(p: ir.Select, table):
    mask = _selector(p.sel, table)
    n = len(table)
    j = np.arange(n)
    has = mask.any(axis=1)
    out = np.zeros((n, n))
    if p.reduce is ir.Reduce.UNIFORM:
        out[mask] = 1.0
    elif p.reduce is ir.Reduce.NEAREST:
        last = np.where(mask, j[None, :], -1).max(axis=1)
        out[np.nonzero(has)[0], last[has]] = 1.0
    elif p.reduce is ir.Reduce.EARLIEST:
        first = np.where(mask, j[None, :], n).min(axis=1)
        out[np.nonzero(has)[0], first[has]] = 1.0
    else:  # DECAY: rate**(i - j), computed relative to the row's nearest key so it never underflows to 0
        last = np.where(mask, j[None, :], -1).max(axis=1)
        gap = np.maximum(last[:, None] - j[None, :], 0)
        out = np.where(mask, np.power(p.rate, gap.astype(np.float64)), 0.0)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@_pattern.register
def _(p: ir.Fallback, table):
    out = np.zeros((len(table), len(table)))
    done = np.zeros(len(table), dtype=bool)
    for option in p.options:
        rows = _pattern(option, table)
        take = ~done & (rows.sum(axis=1) > 0)
        out[take] = rows[take]
        done |= take
    return out


@_pattern.register
def _(p: ir.Mix, table):
    n = len(table)
    out, weight = np.zeros((n, n)), np.zeros(n)
    for term in p.terms:
        rows = _pattern(term.pattern, table)
        present = rows.sum(axis=1) > 0
        out += term.weight * rows
        weight += np.where(present, term.weight, 0.0)
    return np.divide(out, weight[:, None], out=np.zeros_like(out), where=weight[:, None] > 0)


@_pattern.register
def _(p: ir.Score, table):
    n = len(table)
    logits = np.zeros((n, n))
    for term in p.terms:
        value = np.full((n, n), float(term.weight))
        for factor in term.factors:
            value = value * factor_values(factor, table)
        logits += value
    causal = _causal(n)
    logits = np.where(causal, logits, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.where(causal, np.exp(logits), 0.0)
    return out / out.sum(axis=1, keepdims=True)


def factor_values(f: ir.Factor, table: TokenTable) -> np.ndarray:
    """float64[n, n]: one score factor's value at every (query, key) pair (selectors 0/1)."""
    n = len(table)
    if isinstance(f, ir.Dist):
        d = np.maximum(np.arange(n)[:, None] - np.arange(n)[None, :], 0).astype(np.float64)
        return d if f.kind is Distance.DIST else np.log1p(d)
    if isinstance(f, ir.WordTable):
        weights = dict(f.entries)
        values = np.array([weights.get(t, 0.0) for t in table.texts], dtype=np.float64)
        return _side_values(values, f.side)
    return _selector(f, table).astype(np.float64)


__all__ = ["factor_values", "reference_evaluate"]
