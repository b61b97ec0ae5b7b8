"""Programs run as plain Python nested loops: the benchmark's baseline.

The paper's programs are Python functions that loop over query and key positions
and fill a list-of-lists matrix. This module runs any program the same way
(closures per node, called for every (i, j) pair), so `benchmarks/kernels.py` can
measure what compiling buys over that style on exactly the same programs. It is
not used anywhere else and is not a second definition of the semantics (that is
`reference`); a test checks that it agrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from headcode.dsl import Program, ir
from headcode.dsl.features import CmpOp, Distance, Side
from headcode.dsl.tokens import TokenTable

_OPS: dict[CmpOp, Callable[[float, float], bool]] = {
    CmpOp.EQ: lambda a, b: a == b, CmpOp.NE: lambda a, b: a != b, CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b, CmpOp.GT: lambda a, b: a > b, CmpOp.GE: lambda a, b: a >= b,
}

Pair = Callable[[int, int], float]


def loop_evaluate(program: Program, table: TokenTable) -> list[list[float]]:
    n = len(table)
    rows = _pattern(program.ir, table)
    matrix = []
    for i in range(n):
        row = rows(i)
        if sum(row) <= 0:
            row = [1.0] + [0.0] * (n - 1)
        matrix.append(row)
    return matrix


def _value(side: Side, values: list) -> Pair:
    return (lambda i, j: values[j]) if side is Side.KEY else (lambda i, j: values[i])


def _selector(sel: ir.Selector, t: TokenTable) -> Pair:
    if isinstance(sel, ir.Const):
        return lambda i, j: sel.value
    if isinstance(sel, ir.Threshold):
        value, compare = _value(sel.side, t.column(sel.feature).tolist()), _OPS[sel.op]
        return lambda i, j: compare(value(i, j), sel.value)
    if isinstance(sel, ir.Rel):
        key, query, compare = t.column(sel.feature).tolist(), t.column(sel.other).tolist(), _OPS[sel.op]
        return lambda i, j: compare(key[j], query[i] + sel.offset)
    if isinstance(sel, ir.Cls):
        return _value(sel.side, [v == 1 for v in t.column(sel.cls).tolist()])
    if isinstance(sel, ir.WordSet):
        return _value(sel.side, [w in sel.words for w in t.texts])
    if isinstance(sel, ir.Not):
        arg = _selector(sel.arg, t)
        return lambda i, j: not arg(i, j)
    args = [_selector(a, t) for a in sel.args]
    if isinstance(sel, ir.And):
        return lambda i, j: all(a(i, j) for a in args)
    return lambda i, j: any(a(i, j) for a in args)


def _pattern(p: ir.Pattern, t: TokenTable) -> Callable[[int], list[float]]:
    n = len(t)
    if isinstance(p, ir.Select):
        sel = _selector(p.sel, t)

        def select(i: int) -> list[float]:
            row = [0.0] * n
            picked = [j for j in range(i + 1) if sel(i, j)]
            if not picked:
                return row
            if p.reduce is ir.Reduce.NEAREST:
                row[picked[-1]] = 1.0
            elif p.reduce is ir.Reduce.EARLIEST:
                row[picked[0]] = 1.0
            else:
                for j in picked:
                    row[j] = 1.0 if p.reduce is ir.Reduce.UNIFORM else p.rate ** (picked[-1] - j)
                total = sum(row)
                row = [v / total for v in row]
            return row
        return select
    if isinstance(p, ir.Fallback):
        options = [_pattern(o, t) for o in p.options]

        def fallback(i: int) -> list[float]:
            for option in options:
                row = option(i)
                if sum(row) > 0:
                    return row
            return [0.0] * n
        return fallback
    if isinstance(p, ir.Mix):
        terms = [(w.weight, _pattern(w.pattern, t)) for w in p.terms]

        def mix(i: int) -> list[float]:
            row, total = [0.0] * n, 0.0
            for weight, term in terms:
                values = term(i)
                if sum(values) > 0:
                    total += weight
                    row = [r + weight * v for r, v in zip(row, values)]
            return [r / total for r in row] if total > 0 else row
        return mix
    terms = [(term.weight, [_factor(f, t) for f in term.factors]) for term in p.terms]

    def score(i: int) -> list[float]:
        logits = []
        for j in range(i + 1):
            s = 0.0
            for weight, factors in terms:
                v = weight
                for f in factors:
                    v *= f(i, j)
                s += v
            logits.append(s)
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [e / total for e in exps] + [0.0] * (n - i - 1)
    return score


def _factor(f: ir.Factor, t: TokenTable) -> Pair:
    if isinstance(f, ir.Dist):
        if f.kind is Distance.DIST:
            return lambda i, j: float(i - j)
        return lambda i, j: math.log1p(i - j)
    if isinstance(f, ir.WordTable):
        weights = dict(f.entries)
        return _value(f.side, [weights.get(w, 0.0) for w in t.texts])
    sel = _selector(f, t)
    return lambda i, j: 1.0 if sel(i, j) else 0.0
