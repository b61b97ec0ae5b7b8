"""Sketches: programs with holes. They parse, check (with positions), print and
canonicalise like programs; a program's shape is its sketch; filling a sketch with
a program's numbers gives the program back; a sketch never runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from headcode import dsl, testing
from headcode.compiler import evaluate_many, reference_evaluate
from headcode.dsl import Program, ir
from headcode.dsl.shape import shape_id, shape_text
from headcode.dsl.sketch import fill, sketch_of

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("text, canonical, holes", [
    ("softmax(?*bos + ?*key.punct - ?*log_dist)", "softmax(?*bos + ?*key.punct + ?*log_dist)", 3),
    ("?*prev(1) + ?*bos", "?*bos + ?*prev(1)", 2),
    ("?*bos + ?*bos", "bos", 0),  # equal terms without holes merge; one term is its pattern
    ("?*decay(?) + ?*decay(?)", "?*decay(?) + ?*decay(?)", 4),  # two rates to fit: not merged
    ("softmax(2*?*bos + 0.5*bos)", "softmax(?*bos)", 1),  # a hole absorbs what it is multiplied or added to
    ("softmax(2*key.word{the: ?, a: 0.5})", "softmax(key.word{a: 1, the: ?})", 1),
    ("softmax(key.word{?8} + 3*query.word{?4}*key.punct)", "softmax(key.punct*query.word{?4} + key.word{?8})", 2),
    ("decay(key.punct, ?) else bos", "decay(key.punct, ?) else bos", 1),
    ("softmax(-0.5*log_dist + ?*bos)", "softmax(-0.5*log_dist + ?*bos)", 1),  # terms by their whole text
])
def test_sketches_canonicalise(text, canonical, holes):
    sketch = Program.of(text)
    assert (sketch.text, sketch.holes) == (canonical, holes)
    assert Program.of(sketch.text) == sketch


@pytest.mark.parametrize("text, line, column, message", [
    ("?", 1, 1, "a '?' on its own is not a pattern"),
    ("nearest(? and key.punct)", 1, 9, "not a condition"),
    ("0.5*bos + ?*prev(1)", 1, 1, "all numbers or all '?'"),
    ("softmax(?*key.word{the: 1})", 1, 9, "a word table's weights are its entries"),
    ("softmax(key.word{?0})", 1, 9, "holds 1..256 words"),
    ("softmax(key.word{?300})", 1, 9, "holds 1..256 words"),
    ("softmax(key.pos{?3})", 1, 9, "only word tables exist"),
    ("nearest(key.word{the: ?})", 1, 9, "a word table with weights is a score term"),
])
def test_bad_sketches_are_refused_with_positions(text, line, column, message):
    with pytest.raises(dsl.DslError) as err:
        Program.of(text)
    d = err.value.diagnostics[0]
    assert (d.line, d.column) == (line, column) and message in d.message, d


def test_a_sketch_never_runs():
    sketch = Program.of("?*bos + ?*prev(1)")
    table = dsl.TokenTable.from_words(["a", "b"])
    for run in (lambda: evaluate_many([sketch], table), lambda: reference_evaluate(sketch, table)):
        with pytest.raises(dsl.DslError, match="is a sketch with 2 hole"):
            run()


def test_fill_checks_the_number_of_values_and_refuses_open_tables():
    sketch = Program.of("softmax(?*bos + ?*log_dist)")
    assert fill(sketch, [4, -0.7]).text == "softmax(4*bos - 0.7*log_dist)"
    with pytest.raises(dsl.DslError, match="has 2 hole"):
        fill(sketch, [1])
    with pytest.raises(dsl.DslError, match="out of range"):
        fill(sketch, [5000, 1])
    with pytest.raises(dsl.DslError, match="open word table"):
        fill(Program.of("softmax(key.word{?8})"), [])


@PROPS
@given(testing.programs())
def test_a_programs_shape_is_its_canonical_sketch_and_fills_back(tree):
    program = Program.of(tree)
    sketch, values = sketch_of(program)
    assert sketch.text == shape_text(program) and sketch.id == shape_id(program)
    assert len(values) == sketch.holes
    assert fill(sketch, values) == program


@PROPS
@given(testing.sketches())
def test_sketch_canonical_form_is_idempotent_and_round_trips(tree):
    sketch = Program.of(tree)
    again = Program.of(sketch.text)
    assert again.text == sketch.text and again.ir == sketch.ir
    assert Program.of(again.ir).text == sketch.text  # the tree itself is canonical


@PROPS
@given(testing.sketches(), testing.token_tables(max_size=12))
def test_any_filling_of_a_sketch_runs_like_its_reference(tree, table):
    """Filling every hole (open tables left aside) gives a program the kernels run."""
    sketch = Program.of(tree)
    if any(isinstance(f, ir.OpenTable) for t in _scores(sketch.ir) for f in t.factors):
        return
    rng = np.random.default_rng(sketch.holes)
    values = [round(float(v), 1) for v in rng.uniform(0.1, 1.0, sketch.holes)]
    program = fill(sketch, values)
    assert np.allclose(evaluate_many([program], table)[0], reference_evaluate(program, table), atol=1e-9)


def _scores(p):
    stack = [p]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Score):
            yield from node.terms
        stack.extend(c for c in ir.children(node) if isinstance(c, ir.PATTERN_TYPES))


def test_the_commands_that_run_a_program_refuse_a_sketch_in_one_message(capsys):
    from headcode.cli import main

    assert main(["show", "?*bos + ?*prev(1)", "--text", "a b c"]) == 1
    assert main(["describe", "softmax(?*bos)"]) == 1
    err = capsys.readouterr().err
    assert err.count("is a sketch with") == 2 and "Traceback" not in err
    assert main(["canon", "softmax(?*bos + key.word{?8})"]) == 0
    assert "sketch: 2 hole(s)" in capsys.readouterr().out


def test_terms_that_differ_only_in_table_numbers_keep_a_hole_each():
    """Found by Hypothesis in CI: two terms whose tables hold the same words with other
    numbers are two terms of the program, so two of its shape, and fill back."""
    program = Program.of("softmax(0.2*(key.pos == 0)*key.word{the: 0.3}*query.word{a: 0.1, the: 0.1}"
                         " - 0.5*(key.pos == 0)*key.word{the: 0.1}*query.word{a: 0.1, the: 0.1})")
    sketch, values = sketch_of(program)
    assert sketch.text == shape_text(program) and sketch.id == shape_id(program)
    assert fill(sketch, values) == program
