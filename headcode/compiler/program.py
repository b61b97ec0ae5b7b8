"""Compiled programs and batch evaluation: the compiler's public entry points.

    compile_program(Program.of("prev(1) else bos")).evaluate(table)    # one program
    evaluate_many([p1, p2, p3], table)                                  # [3, n, n], one kernel call
    compile_program(p).evaluate_batch([t1, t2])                         # one program, many sequences

A program (`headcode.dsl.Program`, canonical already) is lowered to a tape (`lower`)
and run by the fixed kernels (`kernels`); the only per-sequence work in Python is
filling the lexical columns.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numba
import numpy as np

from headcode.compiler.kernels import run_tapes
from headcode.compiler.lower import WIDTH, Op, Tape, lower
from headcode.dsl import Program, ir
from headcode.dsl.features import Feature
from headcode.dsl.tokens import COLUMNS, TokenTable


class CompiledProgram:
    """One program, ready to run on any token table."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._batch = ProgramBatch([program])
        self.tape = self._batch.tapes[0]

    def evaluate(self, table: TokenTable) -> np.ndarray:
        """float64[n, n]: row i is the program's distribution over keys j <= i."""
        return self._batch.evaluate(table)[0]

    def evaluate_batch(self, tables: Sequence[TokenTable]) -> list[np.ndarray]:
        """The matrix on each of several sequences (they may differ in length)."""
        return [self.evaluate(t) for t in tables]


def compile_program(program: Program) -> CompiledProgram:
    return CompiledProgram(program)


def evaluate_many(programs: Sequence[Program], table: TokenTable) -> np.ndarray:
    """float64[k, n, n]: every program on one sequence, in one kernel call."""
    return ProgramBatch(programs).evaluate(table)


def evaluate_batch(program: Program, tables: Sequence[TokenTable]) -> list[np.ndarray]:
    """One program on many sequences."""
    return compile_program(program).evaluate_batch(tables)


@functools.lru_cache(maxsize=64)
def _back(n: int) -> np.ndarray:
    """The kernels' table of relations that depend on d = i - j only (see `run_tapes`)."""
    d = np.arange(n - 1, -1, -1, dtype=np.float64)
    back = np.stack([d, np.log1p(d), np.ones(n)])
    back.flags.writeable = False
    return back


def lexical_values(node: ir.WordSet | ir.WordTable, texts: Sequence[str]) -> np.ndarray:
    """Per-token values of a word set (1 for members, else 0) or a word table (weight, else 0)."""
    if isinstance(node, ir.WordSet):
        members = frozenset(node.words)
        return np.fromiter((t in members for t in texts), dtype=np.float64, count=len(texts))
    weights = dict(node.entries)
    return np.fromiter((weights.get(t, 0.0) for t in texts), dtype=np.float64, count=len(texts))


# Instructions whose operand `a` is an input column (and may name a lexical one),
# as a lookup table by opcode (np.isin was half the time of building a batch).
_COLUMN_OP = np.zeros(max(Op) + 1, dtype=bool)
_COLUMN_OP[[Op.CMP_K, Op.CMP_Q, Op.V_CMP, Op.V_COL]] = True


class ProgramBatch:
    """Several programs joined into one tape, to run on many sequences.

    Build it once and call `evaluate` per sequence: the tapes are concatenated and
    their lexical columns merged (a word set shared by several programs is filled
    once per sequence) only here.

    The tapes assume that a table's position column is 0..n-1 (true of every table
    built from text or words). For a table where it is not, a second set of tapes
    that reads the column like any other feature is built on first use.
    """

    def __init__(self, programs: Sequence[Program]) -> None:
        self.programs = list(programs)
        for p in self.programs:
            if not isinstance(p, Program):
                raise TypeError(f"compile Programs (dsl.Program.of(text_or_tree)), not {type(p).__name__}")
            p.require_filled("be compiled")
        self.size = len(self.programs)
        self.lexical: dict[ir.WordSet | ir.WordTable, int] = {}
        self._index: tuple[int, tuple] | None = None  # (len(lexical) when built, `_word_index()`)
        self.tapes = [lower(p.ir, True) for p in self.programs]
        self._joined = {True: self._join(self.tapes)}
        self.code, self.values, self.starts, self.results, self.registers, self.vectors = self._joined[True]

    def _join(self, tapes: list[Tape]) -> tuple:
        codes, values, starts = [], [], [0]
        for tape in tapes:
            code = tape.code
            if tape.lexical:
                # Point the tape's lexical columns (numbered from len(COLUMNS) in the
                # tape) at the batch's merged columns.
                code = code.copy()
                slots = _COLUMN_OP[code[:, 0]] & (code[:, 2] >= len(COLUMNS))
                remap = np.array([len(COLUMNS) + self.lexical.setdefault(node, len(self.lexical))
                                  for node in tape.lexical], dtype=np.int64)
                code[slots, 2] = remap[code[slots, 2] - len(COLUMNS)]
            codes.append(code)
            values.append(tape.values)
            starts.append(starts[-1] + len(code))
        return (
            np.concatenate(codes) if codes else np.zeros((0, WIDTH), dtype=np.int64),
            np.concatenate(values) if values else np.zeros(0),
            np.array(starts, dtype=np.int64),
            np.array([t.result for t in tapes], dtype=np.int64),
            max((t.registers for t in tapes), default=0),
            max((t.vectors for t in tapes), default=0),
        )

    def inputs(self, table: TokenTable) -> np.ndarray:
        """float64[n, columns]: the table's features, then the batch's lexical columns."""
        return self.columns(table).T

    def columns(self, table: TokenTable) -> np.ndarray:
        """float64[columns, n]: `inputs` transposed, the layout the kernels read."""
        n, base = len(table), len(COLUMNS)
        columns = np.zeros((base + len(self.lexical), n))
        columns[:base] = table.features.T
        # A batch of fitted programs has over a thousand lexical columns but few
        # distinct words, so each text is looked up once in an index of every
        # word's non-zero entries (`_word_index`), not once per column.
        vocabulary, starts, cols, vals = self._word_index()
        ids = np.array([vocabulary.get(text, -1) for text in table.texts], dtype=np.int64)
        tokens = np.flatnonzero(ids >= 0)
        first, counts = starts[ids[tokens]], np.diff(starts)[ids[tokens]]
        # Entry positions first[m], first[m] + 1, ... for each token m, all at once.
        at = np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        columns[cols[at], np.repeat(tokens, counts)] = vals[at]
        return columns

    def _word_index(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """Every non-zero (column, value) of the lexical columns, grouped by word:
        word w's entries are cols/vals[starts[vocabulary[w]] : starts[vocabulary[w] + 1]]
        (`lexical_values` for every lexical column at once). Built on first use."""
        if self._index is None or self._index[0] != len(self.lexical):
            words: list[str] = []
            cols: list[int] = []
            vals: list[float] = []
            for node, k in self.lexical.items():
                weights = dict.fromkeys(node.words, 1.0) if isinstance(node, ir.WordSet) else dict(node.entries)
                words.extend(weights)
                vals.extend(weights.values())
                cols.extend([len(COLUMNS) + k] * len(weights))
            vocabulary = {w: i for i, w in enumerate(dict.fromkeys(words))}
            ids = np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words))
            order = np.argsort(ids, kind="stable")
            starts = np.concatenate(([0], np.cumsum(np.bincount(ids, minlength=len(vocabulary)))))
            self._index = (len(self.lexical), (vocabulary, starts, np.array(cols, dtype=np.int64)[order],
                                               np.array(vals, dtype=np.float64)[order]))
        return self._index[1]

    def evaluate(self, table: TokenTable) -> np.ndarray:
        """float64[k, n, n]: every program of the batch on one sequence."""
        n = len(table)
        out = np.zeros((self.size, n, n))
        if self.size and n:
            positional = bool(np.array_equal(table.column(Feature.POS), np.arange(n)))
            if positional not in self._joined:
                self._joined[positional] = self._join([lower(p.ir, positional) for p in self.programs])
            code, values, starts, results, registers, vectors = self._joined[positional]
            bits = np.empty((numba.get_num_threads(), n), dtype=np.int64)
            run_tapes(code, values, starts, results, registers, vectors, self.columns(table), _back(n),
                      bits, bits.view(np.float64), out)
        return out
