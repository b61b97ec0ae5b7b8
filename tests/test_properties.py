"""The semantic properties: compiled kernels equal the reference, matrices are causal
and row-stochastic, and canonicalisation never changes a matrix."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from headcode import testing
from headcode.compiler import compile_program, evaluate_many, reference_evaluate
from headcode.dsl import canonical, ir

PROPS = settings(max_examples=250, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROPS
@given(testing.programs(), testing.token_tables())
def test_kernel_equals_reference(program, table):
    expected = reference_evaluate(canonical(program), table)
    assert np.allclose(compile_program(program).evaluate(table), expected, rtol=0, atol=1e-6)


@PROPS
@given(testing.programs(), testing.token_tables())
def test_rows_sum_to_one_and_nothing_above_the_diagonal(program, table):
    for matrix in (compile_program(program).evaluate(table), reference_evaluate(program, table)):
        assert np.all(matrix >= 0)
        assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-9)
        assert not np.triu(matrix, k=1).any()


def _weighted(node) -> bool:
    """Whether canonicalising may round numbers in this program (weights and rates
    go onto the documented grid, which moves a matrix by a rounding error)."""
    if isinstance(node, (ir.Mix, ir.Score)) or (isinstance(node, ir.Select) and node.reduce is ir.Reduce.DECAY):
        return True
    return any(_weighted(child) for child in ir.children(node))


@PROPS
@given(testing.programs(), testing.token_tables())
def test_canonical_form_keeps_the_meaning(program, table):
    assume(not _weighted(program))
    assert np.allclose(reference_evaluate(program, table), reference_evaluate(canonical(program), table),
                       rtol=0, atol=1e-6)


@PROPS
@given(testing.programs(), testing.token_tables())
def test_canonically_equal_programs_give_identical_matrices(program, table):
    # Two spellings of one meaning: the program and its printed-and-reparsed canonical form.
    from headcode import dsl

    again = dsl.parse(dsl.show(canonical(program)))
    assert np.array_equal(compile_program(program).evaluate(table), compile_program(again).evaluate(table))


@PROPS
@given(testing.programs(), testing.token_tables())
def test_permuting_mixture_terms_changes_no_matrix(program, table):
    if isinstance(program, ir.Mix):
        reordered = ir.Mix(tuple(reversed(program.terms)))
        assert np.array_equal(compile_program(program).evaluate(table),
                              compile_program(reordered).evaluate(table))


@settings(max_examples=60, deadline=None)
@given(st.lists(testing.programs(), min_size=1, max_size=6), testing.token_tables())
def test_one_kernel_call_for_many_programs_equals_one_at_a_time(programs, table):
    together = evaluate_many(programs, table)
    for k, program in enumerate(programs):
        assert np.array_equal(together[k], compile_program(program).evaluate(table))
