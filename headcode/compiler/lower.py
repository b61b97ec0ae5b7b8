"""Lowering: a program becomes a flat instruction tape for the fixed kernels.

Numba compiles a specialised function in 0.1-1 s, so compiling one function per
program would cost minutes for a library of hundreds. Instead every program is
lowered to data (an int64 instruction array and a float64 operand array) that a
fixed set of kernels, compiled once and cached on disk, executes. Lowering is pure
Python and takes microseconds.

Machine model (executed by `headcode.compiler.kernels`): registers are n x n float
matrices of which only the lower triangle (keys j <= i) is ever read or written.
Every instruction writes its whole destination triangle, so registers need no
clearing (the fused SCORE_* instructions are the exception: they add into the
logits, which a FILL clears first). Vector registers are length-n float vectors,
one value per token. Per-token inputs are float columns: the token table's integer
features, then one *lexical* column per word set or word table of the program
(filled per sequence by `ProgramBatch.columns`).

Registers are reused as soon as a value is dead, so a program needs about twice
its depth in registers, not one per node.

Score programs are the exception to "one matrix per node": a term such as
`1.2*key.word{the: 1}*same_sent` would cost several full passes (each factor into a
register, then multiply, then add). Instead each term is split by what its factors
read (`headcode.compiler.terms`): the query-only and key-only factors are built as
*vectors* (a second, small register file of length-n vectors, O(n) per
instruction), and one fused SCORE_* instruction adds `q[i] * k[j] * r(i, j)` to the
logits with the relation r evaluated inline, over only the band of keys the term
can touch. Terms with the same relation share that pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from headcode.compiler.terms import Kind, Relation, SplitTerm, split
from headcode.dsl import ir
from headcode.dsl.features import CmpOp, Distance, Side
from headcode.dsl.tokens import COLUMNS, column_index


class Op(enum.IntEnum):
    """Instructions: `op dst a b c d e lo hi x` (unused operands are 0).

    Matrix instructions read and write matrix registers; V_* instructions vector
    registers (`v[t]` over tokens t, read as v[i] for the query and v[j] for the key).
    """

    FILL = 0  # dst = x
    CMP_KQ = 1  # dst = cmp_b(col_a[j], col_c[i] + x)
    CMP_K = 2  # dst = cmp_b(col_a[j], x)
    CMP_Q = 3  # dst = cmp_b(col_a[i], x)
    NOT = 4  # dst = 1 - a
    AND = 5  # dst = a * b
    OR = 6  # dst = max(a, b)
    UNIFORM = 7  # dst = rows of mask a, normalised
    NEAREST = 8  # dst = one-hot on the last selected key of mask a
    EARLIEST = 9  # dst = one-hot on the first selected key of mask a
    DECAY = 10  # dst = x**(last - j) on mask a, normalised
    FALLBACK = 11  # dst = rows of a where a is not empty, else rows of b
    MIX_ADD = 12  # dst += x * a on rows where a is not empty; row weights of dst += x
    MIX_NORM = 13  # dst = rows of dst divided by its row weights (empty where 0)
    # 14-17 (KEY_COL, QUERY_COL, DIST, LOG_DIST), 19 (ADD_SCALED) and 23 (ADD_KEY_COL)
    # were the matrix form of score terms, replaced by the vector and SCORE_* instructions.
    MUL = 18  # dst = a * b
    SOFTMAX = 20  # dst = row-wise softmax of dst over j <= i
    # 21 was FINISH; the kernels now apply the empty-row rule when they copy the result out.
    MIX_ZERO = 22  # dst = 0, row weights of dst = 0
    # Vector instructions, O(n): the one-sided factors of score terms. (The kernels
    # dispatch on the ranges V_FILL..V_AXPY and SCORE..SCORE_MATRIX.)
    V_FILL = 24  # vdst = x
    V_CMP = 25  # vdst[t] = cmp_b(col_a[t], x)
    V_COL = 26  # vdst[t] = col_a[t]
    V_MUL = 27  # vdst = va * vb  (also `and` of 0/1 values)
    V_AXPY = 28  # vdst = va + x * vb  (also `not a` = 1 - a, `a or b` = a + b - a*b)
    # Fused score terms: dst[i, j] += va[i] * vb[j] * r(i, j) on the keys with
    # lo <= j - i <= hi (and j <= i); rows with va[i] == 0 are skipped.
    SCORE = 29  # r = 1
    SCORE_CMP = 30  # r = cmp_d(col_c[j], col_e[i] + x)
    SCORE_DIST = 31  # r = i - j
    SCORE_LOG_DIST = 32  # r = log(1 + i - j)
    SCORE_MATRIX = 33  # r = matrix register c


# Comparison codes the kernels understand (operand b of CMP_*).
CMP_CODES = {CmpOp.EQ: 0, CmpOp.NE: 1, CmpOp.LT: 2, CmpOp.LE: 3, CmpOp.GT: 4, CmpOp.GE: 5}

WIDTH = 9  # ints per instruction: op, dst, a, b, c, d, e, lo, hi
NO_LO = -(1 << 40)  # `lo` of a band unbounded below (any j - i >= -n would do)

LexicalNode = ir.WordSet | ir.WordTable


@dataclass(frozen=True, eq=False)
class Tape:
    """A lowered program: instructions, float operands, register count, lexical columns.

    `lexical[k]` is the word set or table whose per-token values fill input column
    `len(COLUMNS) + k`; `result` is the register that holds the final matrix.
    """

    code: np.ndarray  # int64[m, WIDTH]
    values: np.ndarray  # float64[m]
    registers: int
    lexical: tuple[LexicalNode, ...]
    result: int
    vectors: int = 0  # vector registers


class _Builder:
    def __init__(self, positional: bool) -> None:
        self.positional = positional
        self.code: list[tuple[int, ...]] = []
        self.values: list[float] = []
        self.free: list[int] = []
        self.registers = 0
        self.vfree: list[int] = []
        self.vectors = 0
        self.ones_register: int | None = None
        self.lexical: dict[LexicalNode, int] = {}

    def alloc(self) -> int:
        if self.free:
            return self.free.pop()
        self.registers += 1
        return self.registers - 1

    def release(self, *regs: int) -> None:
        self.free.extend(regs)

    def valloc(self) -> int:
        if self.vfree:
            return self.vfree.pop()
        self.vectors += 1
        return self.vectors - 1

    def vrelease(self, *regs: int) -> None:
        self.vfree.extend(r for r in regs if r != self.ones_register)

    def emit(self, op: Op, dst: int, a: int = 0, b: int = 0, c: int = 0, *, d: int = 0, e: int = 0,
             lo: int = 0, hi: int = 0, x: float = 0.0) -> int:
        self.code.append((int(op), dst, a, b, c, d, e, lo, hi))
        self.values.append(float(x))
        return dst

    def lexical_column(self, node: LexicalNode) -> int:
        return len(COLUMNS) + self.lexical.setdefault(node, len(self.lexical))

    # --- selectors -> 0/1 masks ---------------------------------------------------

    def selector(self, sel: ir.Selector) -> int:
        if isinstance(sel, ir.Const):
            return self.emit(Op.FILL, self.alloc(), x=1.0 if sel.value else 0.0)
        if isinstance(sel, ir.Rel):
            return self.emit(Op.CMP_KQ, self.alloc(), column_index(sel.feature), CMP_CODES[sel.op],
                             column_index(sel.other), x=sel.offset)
        if isinstance(sel, ir.Threshold):
            op = Op.CMP_K if sel.side is Side.KEY else Op.CMP_Q
            return self.emit(op, self.alloc(), column_index(sel.feature), CMP_CODES[sel.op], x=sel.value)
        if isinstance(sel, (ir.Cls, ir.WordSet)):
            col = column_index(sel.cls) if isinstance(sel, ir.Cls) else self.lexical_column(sel)
            op = Op.CMP_K if sel.side is Side.KEY else Op.CMP_Q
            return self.emit(op, self.alloc(), col, CMP_CODES[CmpOp.EQ], x=1.0)
        if isinstance(sel, ir.Not):
            a = self.selector(sel.arg)
            return self.emit(Op.NOT, a, a)
        if isinstance(sel, (ir.And, ir.Or)):
            op = Op.AND if isinstance(sel, ir.And) else Op.OR
            acc = self.selector(sel.args[0])
            for arg in sel.args[1:]:
                other = self.selector(arg)
                self.emit(op, acc, acc, other)
                self.release(other)
            return acc
        raise TypeError(f"not a selector: {sel!r}")

    # --- patterns -> row distributions (or empty rows) ----------------------------

    def pattern(self, p: ir.Pattern) -> int:
        if isinstance(p, ir.Select):
            mask = self.selector(p.sel)
            op = {ir.Reduce.UNIFORM: Op.UNIFORM, ir.Reduce.NEAREST: Op.NEAREST,
                  ir.Reduce.EARLIEST: Op.EARLIEST, ir.Reduce.DECAY: Op.DECAY}[p.reduce]
            return self.emit(op, mask, mask, x=p.rate)
        if isinstance(p, ir.Fallback):
            acc = self.pattern(p.options[0])
            for option in p.options[1:]:
                other = self.pattern(option)
                self.emit(Op.FALLBACK, acc, acc, other)
                self.release(other)
            return acc
        if isinstance(p, ir.Mix):
            acc = self.emit(Op.MIX_ZERO, self.alloc())
            for term in p.terms:
                value = self.pattern(term.pattern)
                self.emit(Op.MIX_ADD, acc, value, x=term.weight)
                self.release(value)
            return self.emit(Op.MIX_NORM, acc, acc)
        if isinstance(p, ir.Score):
            return self.score(p)
        raise TypeError(f"not a pattern: {p!r}")

    # --- score programs: split terms, one fused pass per group -------------------

    def score(self, p: ir.Score) -> int:
        groups: dict[Relation, list[SplitTerm]] = {}
        for term in p.terms:
            split_term = split(term, self.positional)
            if split_term is not None:
                groups.setdefault(split_term.relation, []).append(split_term)
        logits = self.emit(Op.FILL, self.alloc(), x=0.0)
        for relation, terms in groups.items():
            matrix = self.product_matrix(relation.factors) if relation.kind is Kind.MATRIX else 0
            # Terms without query factors add up into one key vector (q = 1), terms
            # without key factors into one query vector (k = 1): one pass for each.
            keyed = [(t.weight, t.key) for t in terms if not t.query]
            queried = [(t.weight, t.query) for t in terms if t.query and not t.key]
            if keyed:
                self.fused(logits, relation, matrix, self.ones(), self.weighted_sum(keyed))
            if queried:
                self.fused(logits, relation, matrix, self.weighted_sum(queried), self.ones())
            for t in terms:
                if t.query and t.key:
                    self.fused(logits, relation, matrix, self.weighted_sum([(t.weight, t.query)]), self.product(t.key))
            if relation.kind is Kind.MATRIX:
                self.release(matrix)
        return self.emit(Op.SOFTMAX, logits, logits)

    def fused(self, logits: int, r: Relation, matrix: int, q: int, k: int) -> None:
        """logits += q[i] * k[j] * r(i, j) on r's band; frees q and k."""
        lo = NO_LO if r.lo is None else r.lo
        if r.kind is Kind.CMP:
            cmp = r.cmp
            self.emit(Op.SCORE_CMP, logits, q, k, column_index(cmp.feature), d=CMP_CODES[cmp.op],
                      e=column_index(cmp.other), lo=lo, hi=r.hi, x=cmp.offset)
        else:
            op = {Kind.NONE: Op.SCORE, Kind.DIST: Op.SCORE_DIST, Kind.LOG_DIST: Op.SCORE_LOG_DIST,
                  Kind.MATRIX: Op.SCORE_MATRIX}[r.kind]
            self.emit(op, logits, q, k, matrix, lo=lo, hi=r.hi)
        self.vrelease(q, k)

    def ones(self) -> int:
        """A vector register holding 1 for the whole program (filled once, never freed)."""
        if self.ones_register is None:
            self.ones_register = self.emit(Op.V_FILL, self.valloc(), x=1.0)
        return self.ones_register

    def weighted_sum(self, parts: list[tuple[float, tuple[ir.Factor, ...]]]) -> int:
        """Vector register: the sum of weight * product of one-sided factors."""
        acc = self.emit(Op.V_FILL, self.valloc(), x=0.0)
        for weight, factors in parts:
            value = self.product(factors)
            self.emit(Op.V_AXPY, acc, acc, value, x=weight)
            self.vrelease(value)
        return acc

    def product(self, factors: tuple[ir.Factor, ...]) -> int:
        """Vector register: the product of one-sided factors (may be `ones`: do not write it)."""
        if not factors:
            return self.ones()
        acc = self.vector(factors[0])
        for f in factors[1:]:
            value = self.vector(f)
            self.emit(Op.V_MUL, acc, acc, value)
            self.vrelease(value)
        return acc

    def vector(self, f: ir.Factor) -> int:
        """A one-sided factor (or a constant selector) as a fresh vector register."""
        if isinstance(f, ir.WordTable):
            return self.emit(Op.V_COL, self.valloc(), self.lexical_column(f))
        if isinstance(f, ir.Const):
            return self.emit(Op.V_FILL, self.valloc(), x=1.0 if f.value else 0.0)
        if isinstance(f, ir.Threshold):
            return self.emit(Op.V_CMP, self.valloc(), column_index(f.feature), CMP_CODES[f.op], x=f.value)
        if isinstance(f, (ir.Cls, ir.WordSet)):
            col = column_index(f.cls) if isinstance(f, ir.Cls) else self.lexical_column(f)
            return self.emit(Op.V_CMP, self.valloc(), col, CMP_CODES[CmpOp.EQ], x=1.0)
        if isinstance(f, ir.Not):
            a = self.vector(f.arg)
            return self.emit(Op.V_AXPY, a, self.ones(), a, x=-1.0)
        if isinstance(f, (ir.And, ir.Or)):
            acc = self.vector(f.args[0])
            for arg in f.args[1:]:
                other = self.vector(arg)
                if isinstance(f, ir.Or):  # for 0/1 values, a or b = a + b - a*b
                    both = self.emit(Op.V_MUL, self.valloc(), acc, other)
                    self.emit(Op.V_AXPY, acc, acc, other, x=1.0)
                    self.emit(Op.V_AXPY, acc, acc, both, x=-1.0)
                    self.vrelease(both)
                else:
                    self.emit(Op.V_MUL, acc, acc, other)
                self.vrelease(other)
            return acc
        raise TypeError(f"not a one-sided factor: {f!r}")

    def product_matrix(self, factors: tuple[ir.Factor, ...]) -> int:
        """Matrix register: the product of factors that read both tokens (the general case)."""
        acc = self.factor(factors[0])
        for factor in factors[1:]:
            other = self.factor(factor)
            self.emit(Op.MUL, acc, acc, other)
            self.release(other)
        return acc

    def factor(self, f: ir.Factor) -> int:
        if isinstance(f, ir.Dist):  # rare here (a distance times another relation): two passes
            op = Op.SCORE_DIST if f.kind is Distance.DIST else Op.SCORE_LOG_DIST
            out = self.emit(Op.FILL, self.alloc(), x=0.0)
            return self.emit(op, out, self.ones(), self.ones(), lo=NO_LO)
        return self.selector(f)  # tables read one side, so they are never part of a matrix


def lower(pattern: ir.Pattern, positional: bool = True) -> Tape:
    """Lower one program (any IR; canonical or not, the meaning is the same).

    `positional`: the tape may assume that the token table's position column is
    0..n-1 (comparisons of key.pos with query.pos then become bands of keys).
    """
    b = _Builder(positional)
    result = b.pattern(pattern)
    code = np.array(b.code, dtype=np.int64).reshape(-1, WIDTH)
    return Tape(code, np.array(b.values, dtype=np.float64), b.registers, tuple(b.lexical), result, b.vectors)
