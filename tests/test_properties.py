"""The semantic properties: compiled kernels equal the reference, matrices are causal
and row-stochastic, and canonicalisation never changes a matrix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from headcode import testing
from headcode.compiler import compile_program, evaluate_many, reference_evaluate
from headcode.dsl import Program, ir
from headcode.dsl.canon import canonical
from headcode.dsl.tokens import TokenTable

PROPS = settings(max_examples=250, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROPS
@given(testing.programs(), testing.token_tables())
def test_kernel_equals_reference(program, table):
    program = Program.of(program)
    expected = reference_evaluate(program, table)
    assert np.allclose(compile_program(program).evaluate(table), expected, rtol=0, atol=1e-6)


@PROPS
@given(testing.fitted_scores(), testing.token_tables(max_size=40))
def test_kernel_equals_reference_on_fitted_score_forms(program, table):
    # Terms split into query and key vectors, bands and one inline relation (lower/terms).
    program = Program.of(program)
    expected = reference_evaluate(program, table)
    assert np.allclose(compile_program(program).evaluate(table), expected, rtol=0, atol=1e-6)


def _positions_moved(table, shift: int, reverse: bool):
    """The table with a position column that is not 0..n-1 (so no band may be assumed)."""
    from headcode.dsl.features import Feature
    from headcode.dsl.tokens import TokenTable, column_index

    features = table.features.copy()
    pos = np.arange(len(table))[::-1] if reverse else np.arange(len(table))
    features[:, column_index(Feature.POS)] = pos + shift
    return TokenTable(table.ids, table.surfaces, table.texts, features)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.one_of(testing.programs(), testing.fitted_scores()), testing.token_tables(), st.integers(-3, 3),
       st.booleans())
def test_kernel_equals_reference_when_positions_are_not_indices(program, table, shift, reverse):
    assume(shift != 0 or reverse)
    moved = _positions_moved(table, shift, reverse)
    program = Program.of(program)
    expected = reference_evaluate(program, moved)
    assert np.allclose(compile_program(program).evaluate(moved), expected, rtol=0, atol=1e-6)


@PROPS
@given(testing.programs(), testing.token_tables())
def test_rows_sum_to_one_and_nothing_above_the_diagonal(program, table):
    for matrix in (compile_program(Program.of(program)).evaluate(table), reference_evaluate(program, table)):
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
    # Two spellings of one meaning: the tree as generated and its canonical text read back.
    again = Program.of(Program.of(program).text)
    assert np.array_equal(compile_program(Program.of(program)).evaluate(table), compile_program(again).evaluate(table))


@PROPS
@given(testing.mixtures(), testing.token_tables())
def test_permuting_mixture_terms_changes_no_matrix(program, table):
    # The reference evaluator reads the trees as written, without the canonical form.
    reordered = ir.Mix(tuple(reversed(program.terms)))
    assert np.allclose(reference_evaluate(program, table), reference_evaluate(reordered, table), rtol=0, atol=1e-12)
    assert np.array_equal(compile_program(Program.of(program)).evaluate(table),
                          compile_program(Program.of(reordered)).evaluate(table))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(testing.programs(), testing.fitted_scores()), min_size=1, max_size=6), testing.token_tables())
def test_one_kernel_call_for_many_programs_equals_one_at_a_time(programs, table):
    programs = [Program.of(p) for p in programs]
    together = evaluate_many(programs, table)
    for k, program in enumerate(programs):
        assert np.array_equal(together[k], compile_program(program).evaluate(table))


LARGEST = (  # every factor a term may hold, each at the limit, on long texts
    # (a term's weight folds into its first table, whose entries stay within 1000)
    "softmax(dist*dist*key.word{the: 1000}*query.word{the: 1000} - dist*log_dist*key.word{a: -1000})",
    "softmax(-1000*dist*dist + dist*dist*key.word{the: -1000}*query.word{cat: 1000} + 1000*bos*log_dist*log_dist)",
)


@pytest.mark.parametrize("text", LARGEST)
@pytest.mark.parametrize("n", [50, 3000])
def test_programs_at_the_limits_stay_finite_and_agree(text, n):
    rng = np.random.default_rng(n)
    table = TokenTable.from_words(list(rng.choice(["the", "a", "cat", "sat", "."], size=n)))
    program = Program.of(text)
    fast, slow = compile_program(program).evaluate(table), reference_evaluate(program, table)
    assert np.isfinite(fast).all() and np.isfinite(slow).all()
    assert np.allclose(fast.sum(1), 1.0) and np.allclose(fast, slow, rtol=0, atol=1e-9)
