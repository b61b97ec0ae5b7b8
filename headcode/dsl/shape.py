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
"""

from __future__ import annotations

from headcode.dsl.printer import show
from headcode.dsl.program import Program, text_id
from headcode.dsl.sketch import sketch_tree


def shape_text(program: Program) -> str:
    """The program's text with every fitted number written `?`: the text of its
    sketch (`headcode.dsl.sketch`), itself a program in canonical form."""
    return show(sketch_tree(program)[0])


def shape_id(program: Program) -> str:
    return text_id(shape_text(program))
