"""Compiled programs and batch evaluation: the compiler's public entry points.

    >>> from headcode.compiler import compile_program, evaluate_many
    >>> compile_program(dsl.parse("prev(1) else bos")).evaluate(table)      # one program
    >>> evaluate_many([p1, p2, p3], table)                                   # [3, n, n], one kernel call
    >>> compile_program(p).evaluate_batch([t1, t2])                          # one program, many sequences

A program is canonicalised, lowered to a tape (`lower`) and run by the fixed kernels
(`kernels`); the only per-sequence work in Python is filling the lexical columns.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numba
import numpy as np

from headcode.compiler.kernels import run_tapes
from headcode.compiler.lower import WIDTH, Op, Tape, lower
from headcode.compiler.tokens import COLUMNS, TokenTable
from headcode.dsl import canonical, ir


@functools.lru_cache(maxsize=4096)
def _tape(pattern: ir.Pattern) -> Tape:
    return lower(canonical(pattern))


class CompiledProgram:
    """One program, ready to run on any token table."""

    def __init__(self, pattern: ir.Pattern) -> None:
        self.pattern = pattern
        self.tape = _tape(pattern)
        self._batch = ProgramBatch([pattern])

    def evaluate(self, table: TokenTable) -> np.ndarray:
        """float64[n, n]: row i is the program's distribution over keys j <= i."""
        return self._batch.evaluate(table)[0]

    def evaluate_batch(self, tables: Sequence[TokenTable]) -> list[np.ndarray]:
        """The matrix on each of several sequences (they may differ in length)."""
        return [self.evaluate(t) for t in tables]


def compile_program(pattern: ir.Pattern) -> CompiledProgram:
    return CompiledProgram(pattern)


def evaluate_many(patterns: Sequence[ir.Pattern], table: TokenTable) -> np.ndarray:
    """float64[k, n, n]: every program on one sequence, in one kernel call."""
    return ProgramBatch(patterns).evaluate(table)


def evaluate_batch(pattern: ir.Pattern, tables: Sequence[TokenTable]) -> list[np.ndarray]:
    """One program on many sequences."""
    return compile_program(pattern).evaluate_batch(tables)


def lexical_values(node: ir.Words | ir.Table, texts: Sequence[str]) -> np.ndarray:
    """Per-token values of a word set (1 for members, else 0) or a word table (weight, else 0)."""
    if isinstance(node, ir.Words):
        members = frozenset(node.words)
        return np.fromiter((t in members for t in texts), dtype=np.float64, count=len(texts))
    weights = dict(node.entries)
    return np.fromiter((weights.get(t, 0.0) for t in texts), dtype=np.float64, count=len(texts))


# Instructions whose operand `a` is an input column (and may name a lexical one).
_COLUMN_OPS = np.array([Op.CMP_K, Op.CMP_Q, Op.KEY_COL, Op.QUERY_COL, Op.ADD_KEY_COL], dtype=np.int64)


class ProgramBatch:
    """Several programs joined into one tape, to run on many sequences.

    Build it once and call `evaluate` per sequence: the tapes are concatenated and
    their lexical columns merged (a word set shared by several programs is filled
    once per sequence) only here.
    """

    def __init__(self, patterns: Sequence[ir.Pattern]) -> None:
        tapes = [_tape(p) for p in patterns]
        self.size = len(tapes)
        self.lexical: dict[ir.Words | ir.Table, int] = {}
        codes, values, starts = [], [], [0]
        for tape in tapes:
            code = tape.code.copy()
            # Point the tape's lexical columns (numbered from len(COLUMNS) in the
            # tape) at the batch's merged columns.
            slots = np.isin(code[:, 0], _COLUMN_OPS) & (code[:, 2] >= len(COLUMNS))
            remap = np.array([len(COLUMNS) + self.lexical.setdefault(node, len(self.lexical))
                              for node in tape.lexical], dtype=np.int64)
            code[slots, 2] = remap[code[slots, 2] - len(COLUMNS)]
            codes.append(code)
            values.append(tape.values)
            starts.append(starts[-1] + len(code))
        self.code = np.concatenate(codes) if codes else np.zeros((0, WIDTH), dtype=np.int64)
        self.values = np.concatenate(values) if values else np.zeros(0)
        self.starts = np.array(starts, dtype=np.int64)
        self.results = np.array([t.result for t in tapes], dtype=np.int64)
        self.registers = max((t.registers for t in tapes), default=0)

    def inputs(self, table: TokenTable) -> np.ndarray:
        """float64[n, columns]: the table's features, then the batch's lexical columns."""
        n, base = len(table), len(COLUMNS)
        inputs = np.empty((n, base + len(self.lexical)))
        inputs[:, :base] = table.features
        for node, k in self.lexical.items():
            inputs[:, base + k] = lexical_values(node, table.texts)
        return inputs

    def evaluate(self, table: TokenTable) -> np.ndarray:
        """float64[k, n, n]: every program of the batch on one sequence."""
        n = len(table)
        out = np.zeros((self.size, n, n))
        if self.size and n:
            run_tapes(self.code, self.values, self.starts, self.results, self.registers, self.inputs(table), out,
                      numba.get_num_threads())
        return out
