"""A program's shape: its canonical text with every fitted number replaced by `?`.

    >>> from headcode.dsl import Program
    >>> shape_text(Program.of("0.7*prev(1) + 0.3*bos"))
    '?*bos + ?*prev(1)'

Heads that share a shape do the same thing with different strengths: the shape of
`softmax(4*bos - 0.7*log_dist)` and of `softmax(2.5*bos - 0.2*log_dist)` is
`softmax(?*bos + ?*log_dist)`. Fitted numbers are mixture weights, score weights
(their sign included), word-table weights and decay rates; positions (`prev(2)`,
`window(8)`, `key.pos <= 4`) and words are structure, so `key.word{the: 1.2}`
has the shape `key.word{the: ?}`. Terms are ordered by their own shape text, so
the order does not depend on the weights. A shape's id is that of its text, which
is the canonical text of the program's sketch, so it is also the sketch's id:
`Program.of(shape_text(p)).id == shape_id(p)`.

`headcode.dsl.sketch` defines the same text by building the sketch (`sketch_tree`);
this module prints it directly, without the hole-filled copy of every word table
(three times faster on a library's full programs, which are mostly tables).
tests/test_sketch.py checks that the two agree on every generated program.
"""

from __future__ import annotations

from headcode.dsl import ir
from headcode.dsl.printer import HOLE, show, word
from headcode.dsl.program import Program, text_id


def shape_text(program: Program) -> str:
    """The program's text with every fitted number written `?`."""
    return _pattern(program.ir)


def shape_id(program: Program) -> str:
    return text_id(shape_text(program))


def _pattern(p: ir.Pattern) -> str:
    if isinstance(p, ir.Select):
        if p.reduce is not ir.Reduce.DECAY:
            return show(p)
        return f"decay({HOLE})" if p.sel == ir.Const(True) else f"decay({show(p.sel)}, {HOLE})"
    if isinstance(p, ir.Fallback):
        return " else ".join(f"({_pattern(o)})" if isinstance(o, ir.Fallback) else _pattern(o) for o in p.options)
    if isinstance(p, ir.Mix):
        terms = sorted(f"({_pattern(t.pattern)})" if isinstance(t.pattern, (ir.Fallback, ir.Mix))
                       else _pattern(t.pattern) for t in p.terms)
        return " + ".join(f"{HOLE}*{t}" for t in terms)
    return "softmax(" + " + ".join(sorted(_term(t) for t in p.terms)) + ")"


def _term(t: ir.ScoreTerm) -> str:
    factors = [_factor(f) for f in t.factors]
    if any(isinstance(f, ir.WordTable) for f in t.factors):
        return "*".join(factors)  # the weight is in the table
    return "*".join([HOLE, *factors])


def _factor(f: ir.Factor) -> str:
    if isinstance(f, ir.WordTable):
        return f"{f.side.value}.word{{{', '.join(f'{word(w)}: {HOLE}' for w, _ in f.entries)}}}"
    return show(ir.ScoreTerm(1.0, (f,)))  # a weight of 1 is not printed
