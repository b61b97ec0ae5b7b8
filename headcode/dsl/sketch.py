"""Sketches and programs: a program's sketch, and a sketch filled with numbers.

A sketch is a program with holes (`?`, `ir.HOLE`; docs/dsl.md, "Sketches"). The
sketch of a program is the program with every fitted number a hole: mixture and
score weights, word-table weights and decay rates (positions, offsets and words
are structure and stay). It is what `headcode.dsl.shape` calls the program's shape:

    >>> from headcode.dsl import Program
    >>> sketch, values = sketch_of(Program.of("softmax(4*bos - 0.7*log_dist)"))
    >>> sketch.text, values
    ('softmax(?*bos + ?*log_dist)', (4.0, -0.7))
    >>> fill(sketch, values).text
    'softmax(4*bos - 0.7*log_dist)'

Holes are numbered in the order they are printed; `fill` puts numbers into them in
that order, and `sketch_of` gives a program's numbers in the order of its sketch's
holes, so `fill(*sketch_of(p)) == p` (a property test checks it). An open table
(`key.word{?8}`) has no number to take: `fill` refuses it; `headcode fit` chooses
its words.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from headcode.dsl import ir
from headcode.dsl.errors import Diagnostic, DslError
from headcode.dsl.printer import show
from headcode.dsl.program import Program


def sketch_of(program: Program) -> tuple[Program, tuple[float, ...]]:
    """The program's sketch and its numbers, one per hole in the sketch's order."""
    tree, values = sketch_tree(program)
    return Program.of(tree), values


def sketch_tree(program: Program) -> tuple[ir.Pattern, tuple[float, ...]]:
    """`sketch_of` without checking the sketch again: its tree is already canonical
    (the program's, with holes for numbers and terms in the order of their text)."""
    tree, values = _pattern(program.ir)
    return tree, tuple(values)


def fill(sketch: Program, values: Sequence[float]) -> Program:
    """The program `sketch` becomes with `values` in its holes, in printed order
    (checked like any program: a value out of range is a DslError)."""
    if any(isinstance(f, ir.OpenTable) for f in _factors(sketch.ir)):
        raise DslError([Diagnostic(1, 1, "an open word table (key.word{?N}) is filled by headcode fit, "
                                         "which chooses its words, not by a list of numbers")], sketch.text)
    if len(values) != sketch.holes:
        raise DslError([Diagnostic(1, 1, f"this sketch has {sketch.holes} hole(s), "
                                         f"given {len(values)} value(s)")], sketch.text)
    numbers = iter(float(v) for v in values)
    return Program.of(_filled(sketch.ir, numbers))


# --- program -> sketch (numbers out, terms in the sketch's order) --------------------


def _pattern(p: ir.Pattern) -> tuple[ir.Pattern, list[float]]:
    if isinstance(p, ir.Select):
        if p.reduce is ir.Reduce.DECAY:
            return ir.Select(p.sel, p.reduce, ir.HOLE), [p.rate]
        return p, []
    if isinstance(p, ir.Fallback):
        parts = [_pattern(o) for o in p.options]
        return ir.Fallback(tuple(t for t, _ in parts)), [v for _, vs in parts for v in vs]
    if isinstance(p, ir.Mix):
        parts = []
        for term in p.terms:
            tree, values = _pattern(term.pattern)
            weighted = ir.Weighted(ir.HOLE, tree)
            parts.append((show(ir.Mix((weighted,))), weighted, [term.weight, *values]))
        return _sorted(parts, ir.Mix)
    parts = []
    for term in p.terms:
        t, values = _term(term)
        parts.append((show(t), t, values))
    return _sorted(parts, ir.Score)


def _sorted(parts, kind) -> tuple[ir.Pattern, list[float]]:
    """Terms in the order the canonical form gives a sketch's terms: by their text."""
    parts.sort(key=lambda part: part[0])
    return kind(tuple(t for _, t, _ in parts)), [v for _, _, vs in parts for v in vs]


def _term(t: ir.ScoreTerm) -> tuple[ir.ScoreTerm, list[float]]:
    factors, values = [], []
    for f in t.factors:
        if isinstance(f, ir.WordTable):
            factors.append(ir.WordTable(f.side, tuple((w, ir.HOLE) for w, _ in f.entries)))
            values.extend(x for _, x in f.entries)
        else:
            factors.append(f)
    if any(isinstance(f, ir.TABLE_TYPES) for f in t.factors):
        return ir.ScoreTerm(t.weight, tuple(factors)), values  # the table carries the weights
    return ir.ScoreTerm(ir.HOLE, tuple(factors)), [t.weight]


# --- sketch + numbers -> tree ------------------------------------------------------------


def _filled(p: ir.Pattern, numbers: Iterator[float]) -> ir.Pattern:
    if isinstance(p, ir.Select):
        return ir.Select(p.sel, p.reduce, _take(p.rate, numbers))
    if isinstance(p, ir.Fallback):
        return ir.Fallback(tuple(_filled(o, numbers) for o in p.options))
    if isinstance(p, ir.Mix):
        return ir.Mix(tuple(ir.Weighted(_take(t.weight, numbers), _filled(t.pattern, numbers)) for t in p.terms))
    terms = []
    for t in p.terms:
        weight = _take(t.weight, numbers)
        factors = tuple(ir.WordTable(f.side, tuple((w, _take(x, numbers)) for w, x in f.entries))
                        if isinstance(f, ir.WordTable) else f for f in t.factors)
        terms.append(ir.ScoreTerm(weight, factors))
    return ir.Score(tuple(terms))


def _take(x: ir.Weight, numbers: Iterator[float]) -> float:
    return next(numbers) if isinstance(x, ir.Hole) else x


def _factors(p: ir.Pattern) -> Iterator[ir.Factor]:
    stack = [p]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Score):
            yield from (f for t in node.terms for f in t.factors)
        else:
            stack.extend(c for c in ir.children(node) if isinstance(c, ir.PATTERN_TYPES))
