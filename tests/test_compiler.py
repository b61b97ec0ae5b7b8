"""The compiler's entry points, on hand-checked examples, and its benchmark programs."""

from __future__ import annotations

import numpy as np
import pytest

from headcode import dsl
from headcode.compiler import ProgramBatch, compile_program, evaluate_batch, evaluate_many, kernels, reference_evaluate
from headcode.compiler.loops import loop_evaluate
from headcode.compiler.lower import Op, lower
from headcode.dsl import TokenTable, ir

WORDS = 'Tom saw a dog . The dog ran , and Tom said " hi "'.split()
TABLE = TokenTable.from_words(WORDS)


def matrix(text: str, table: TokenTable = TABLE) -> np.ndarray:
    return compile_program(dsl.Program.of(text)).evaluate(table)


def test_opcode_literals_in_the_kernels_mirror_the_enum():
    for op in Op:
        assert getattr(kernels, op.name) == op.value, op.name
        # The kernels dispatch vector and fused score instructions by range.
        assert (Op.V_FILL <= op <= Op.V_AXPY) == op.name.startswith("V_"), op.name
        assert (Op.SCORE <= op <= Op.SCORE_MATRIX) == op.name.startswith("SCORE"), op.name


def test_hand_checked_rows():
    n = len(WORDS)
    assert np.array_equal(matrix("self"), np.eye(n))
    prev = matrix("prev(1)")
    assert prev[0, 0] == 1 and all(prev[i, i - 1] == 1 for i in range(1, n))
    assert np.array_equal(matrix("bos")[:, 0], np.ones(n))
    assert np.allclose(matrix("uniform")[3], [0.25] * 4 + [0] * (n - 4))
    mix = matrix("0.7*prev(1) + 0.3*bos")
    assert mix[2, 1] == pytest.approx(0.7) and mix[2, 0] == pytest.approx(0.3)
    last = matrix("last(punct) else bos")
    assert last[3, 0] == 1 and last[4, 4] == 1 and last[7, 4] == 1 and last[8, 8] == 1
    same = matrix("same_token else bos")  # the second "dog" (6) looks at the first (3)
    assert same[6, 3] == 1 and same[5, 0] == 1
    induction = matrix("induction else bos")  # second "Tom" (10): after the first Tom came "saw" (1)
    assert induction[10, 1] == 1


def test_decay_weights_fall_off_geometrically():
    row = matrix("decay(0.5)")[3]
    assert np.allclose(row[:4], np.array([1, 2, 4, 8]) / 15)


def test_softmax_with_word_tables():
    m = matrix('softmax(2*bos + key.word{dog: 1.5} - 0.5*log_dist)')
    logits = np.array([2.0, 0, 0, 1.5, 0]) - 0.5 * np.log1p(4 - np.arange(5))
    expected = np.exp(logits) / np.exp(logits).sum()
    assert np.allclose(m[4, :5], expected)


def test_long_sequences_do_not_underflow():
    table = TokenTable.from_words(["a"] * 600 + ["."])
    m = matrix("decay(key.punct or bos, 0.01)", table)
    assert np.isfinite(m).all() and np.allclose(m.sum(axis=1), 1)


def test_many_programs_and_many_sequences():
    programs = [dsl.Program.of(t) for t in ("prev(1)", "bos", "softmax(key.word{dog: 2})", "key.word{dog} else self")]
    together = evaluate_many(programs, TABLE)
    assert together.shape == (4, len(WORDS), len(WORDS))
    for k, p in enumerate(programs):
        assert np.allclose(together[k], reference_evaluate(p, TABLE))
    tables = [TokenTable.from_words(WORDS[:k]) for k in (1, 5, len(WORDS))]
    for table, m in zip(tables, evaluate_batch(programs[2], tables)):
        assert np.allclose(m, reference_evaluate(programs[2], table))


def test_a_batch_shares_word_columns():
    same = dsl.Program.of("softmax(key.word{dog: 2})")
    batch = ProgramBatch([same, dsl.Program.of("0.5*prev(1) + 0.5*bos"), same])
    assert len(batch.lexical) == 1


def test_registers_are_reused():
    # A long mixture needs a handful of registers, not one per node.
    text = " + ".join(f"{k + 1}*prev({k})" for k in range(1, 40))
    assert lower(dsl.Program.of(text).ir).registers <= 4


def test_empty_sequence():
    assert matrix("prev(1)", TokenTable.from_words([])).shape == (0, 0)


def test_python_loop_baseline_agrees():
    from headcode.compiler.benchmark import programs, sequence

    table = sequence(40)
    for text in programs(40):
        p = dsl.Program.of(text)
        assert np.allclose(np.array(loop_evaluate(p, table)), reference_evaluate(p, table), atol=1e-9), text


def test_benchmark_programs_are_distinct_and_valid():
    from headcode.compiler.benchmark import programs

    texts = programs()
    assert len({dsl.Program.of(t).id for t in texts}) == len(texts) == 300


# --- score programs: split terms, fused passes ----------------------------------------

FITTED = ('softmax(2*bos + 1.1*prev(1) + 0.3*(query.punct and self) - 0.6*log_dist + 0.8*key.punct'
          ' + key.word{the: 1.2, dog: -0.5}*same_sent + query.word{".": 2.1, dog: 0.7}*prev(1)'
          ' + query.word{tom: 1.5}*log_dist + query.word{said: 0.4}*key.punct + 0.7*same_token + 0.2*window(3))')


def test_score_terms_become_vector_work_and_one_pass_per_relation():
    from headcode.compiler.lower import NO_LO
    from headcode.dsl.sugar import SELF, _prev

    PREV1 = _prev(1)

    program = dsl.Program.of(FITTED)
    tape = lower(program.ir)
    ops = [Op(row[0]) for row in tape.code]
    # No factor is computed as a matrix: only the logits are (FILL, fused adds, SOFTMAX).
    assert not {Op.CMP_KQ, Op.CMP_K, Op.CMP_Q, Op.AND, Op.MUL} & set(ops)
    fused = [row for row in tape.code if Op(row[0]).name.startswith("SCORE")]
    # Terms that read one side only share passes: fewer passes than terms.
    assert len(fused) < len(program.ir.terms)
    # Every term that reads one key per row (prev(1), self) is a pass over a diagonal
    # band (O(n)), and only full relations (log_dist, same_sent, ...) touch every key.
    single_key = [t for t in program.ir.terms if any(f in (SELF, PREV1) or (isinstance(f, ir.And) and
                                                       {SELF, PREV1} & set(f.args)) for f in t.factors)]
    diagonal = [row for row in fused if row[7] == row[8]]
    assert single_key and len(diagonal) <= len(single_key) and all(row[7] != NO_LO for row in diagonal)
    assert np.allclose(compile_program(program).evaluate(TABLE), reference_evaluate(program, TABLE), atol=1e-12)


def test_split_terms():
    from headcode.compiler.terms import Kind, split
    from headcode.dsl.features import CmpOp

    def term(text):
        (t,) = dsl.read(f"softmax({text})").terms
        return t

    s = split(term("3*(query.punct and self)"))
    assert [type(f) for f in s.query] == [ir.Cls] and not s.key
    assert (s.relation.kind, s.relation.lo, s.relation.hi) == (Kind.NONE, 0, 0)
    s = split(term("same_token"))
    assert s.relation.kind is Kind.CMP and s.relation.cmp.op is CmpOp.EQ and s.relation.hi == -1
    assert split(term("window(3)*prev(5)")) is None  # no key is in both bands
    # Without positions 0..n-1 a comparison of positions is no band.
    s = split(term("key.word{a: 1}*prev(2)"), positional=False)
    assert s.relation.kind is Kind.CMP and s.relation.lo is None and len(s.key) == 1
    s = split(term("log_dist*same_sent"))
    assert s.relation.kind is Kind.MATRIX and len(s.relation.factors) == 2


def test_positions_that_are_not_indices_use_no_bands():
    from headcode.dsl.features import Feature
    from headcode.dsl.tokens import column_index

    features = TABLE.features.copy()
    features[:, column_index(Feature.POS)] += 2
    moved = TokenTable(TABLE.ids, TABLE.surfaces, TABLE.texts, features)
    for text in (FITTED, "prev(1) else bos", "softmax(2*prev(1) + window(3)*key.punct)"):
        program = dsl.Program.of(text)
        assert np.allclose(compile_program(program).evaluate(moved), reference_evaluate(program, moved), atol=1e-12)


def test_softmax_exp_matches_libm():
    xs = np.concatenate([-np.logspace(-18, 3, 20000), np.linspace(-800, 0, 20000),
                         [0.0, -0.0, -707.9, -708.0, -708.1, -745.2, -1e300, -np.inf]])
    got, expected = kernels.exp_nonpositive(xs), np.exp(xs)
    assert got[-8] == got[-7] == 1.0 and got[-1] == 0.0
    normal = expected > 1e-300
    assert (np.abs(got - expected)[normal] / expected[normal]).max() < 1e-15
    assert np.abs(got - expected)[~normal].max() <= np.exp(-708.0)  # exp(x) below -708 is taken as 0


def test_lexical_columns_equal_lexical_values():
    from headcode.compiler import lexical_values
    from headcode.dsl.tokens import COLUMNS

    batch = ProgramBatch([dsl.Program.of(FITTED), dsl.Program.of('key.word{dog, "."} else bos')])
    inputs = batch.inputs(TABLE)
    assert np.array_equal(inputs[:, : len(COLUMNS)], TABLE.features)
    for node, k in batch.lexical.items():
        assert np.array_equal(inputs[:, len(COLUMNS) + k], lexical_values(node, TABLE.texts))
