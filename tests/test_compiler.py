"""The compiler's entry points, on hand-checked examples, and its benchmark programs."""

from __future__ import annotations

import numpy as np
import pytest

from headcode import dsl
from headcode.compiler import (
    ProgramBatch, TokenTable, compile_program, evaluate_batch, evaluate_many, reference_evaluate,
)
from headcode.compiler import kernels
from headcode.compiler.loops import loop_evaluate
from headcode.compiler.lower import Op, lower

WORDS = 'Tom saw a dog . The dog ran , and Tom said " hi "'.split()
TABLE = TokenTable.from_words(WORDS)


def matrix(text: str, table: TokenTable = TABLE) -> np.ndarray:
    return compile_program(dsl.parse(text)).evaluate(table)


def test_opcode_literals_in_the_kernels_mirror_the_enum():
    for op in Op:
        assert getattr(kernels, op.name) == op.value, op.name


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
    programs = [dsl.parse(t) for t in ("prev(1)", "bos", "softmax(key.word{dog: 2})", "key.word{dog} else self")]
    together = evaluate_many(programs, TABLE)
    assert together.shape == (4, len(WORDS), len(WORDS))
    for k, p in enumerate(programs):
        assert np.allclose(together[k], reference_evaluate(p, TABLE))
    tables = [TokenTable.from_words(WORDS[:k]) for k in (1, 5, len(WORDS))]
    for table, m in zip(tables, evaluate_batch(programs[2], tables)):
        assert np.allclose(m, reference_evaluate(programs[2], table))


def test_a_batch_shares_word_columns():
    same = dsl.parse("softmax(key.word{dog: 2})")
    batch = ProgramBatch([same, dsl.parse("0.5*prev(1) + 0.5*bos"), same])
    assert len(batch.lexical) == 1


def test_registers_are_reused():
    # A long mixture needs a handful of registers, not one per node.
    text = " + ".join(f"{k + 1}*prev({k})" for k in range(1, 40))
    assert lower(dsl.canonical(dsl.parse(text))).registers <= 4


def test_empty_sequence():
    assert matrix("prev(1)", TokenTable.from_words([])).shape == (0, 0)


def test_python_loop_baseline_agrees():
    from headcode.compiler.benchmark import programs, sequence

    table = sequence(40)
    for text in programs(40):
        p = dsl.parse(text)
        assert np.allclose(np.array(loop_evaluate(p, table)), reference_evaluate(p, table), atol=1e-9), text


def test_benchmark_programs_are_distinct_and_valid():
    from headcode.compiler.benchmark import programs

    texts = programs()
    assert len({dsl.program_id(t) for t in texts}) == len(texts) == 300
