"""Lowering: a program becomes a flat instruction tape for the fixed kernels.

Numba compiles a specialised function in 0.1-1 s, so compiling one function per
program would cost minutes for a library of hundreds. Instead every program is
lowered to data (an int64 instruction array and a float64 operand array) that a
fixed set of kernels, compiled once and cached on disk, executes. Lowering is pure
Python and takes microseconds.

Machine model (executed by `headcode.compiler.kernels`): registers are n x n float
matrices of which only the lower triangle (keys j <= i) is ever read or written.
Every instruction writes its whole destination triangle, so registers need no
clearing. Per-token inputs are the columns of one float matrix: the token table's
integer features, then one *lexical* column per word set or word table of the
program (filled per sequence by `headcode.compiler.lexical`).

Registers are reused as soon as a value is dead, so a program needs about twice
its depth in registers, not one per node.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from headcode.compiler.tokens import COLUMNS, column_index
from headcode.dsl import ir
from headcode.dsl.features import CmpOp, Distance, Side


class Op(enum.IntEnum):
    """Instructions: `op dst a b c x` (unused operands are 0)."""

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
    KEY_COL = 14  # dst = col_a[j]
    QUERY_COL = 15  # dst = col_a[i]
    DIST = 16  # dst = i - j
    LOG_DIST = 17  # dst = log(1 + i - j)
    MUL = 18  # dst = a * b
    ADD_SCALED = 19  # dst += x * a
    SOFTMAX = 20  # dst = row-wise softmax of dst over j <= i
    # 21 was FINISH; the kernels now apply the empty-row rule when they copy the result out.
    MIX_ZERO = 22  # dst = 0, row weights of dst = 0
    ADD_KEY_COL = 23  # dst += x * col_a[j]  (a one-factor key-side score term in one pass)


# Comparison codes the kernels understand (operand b of CMP_*).
CMP_CODES = {CmpOp.EQ: 0, CmpOp.NE: 1, CmpOp.LT: 2, CmpOp.LE: 3, CmpOp.GT: 4, CmpOp.GE: 5}

WIDTH = 5  # int operands per instruction: op, dst, a, b, c

LexicalNode = ir.Words | ir.Table


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


class _Builder:
    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int, int]] = []
        self.values: list[float] = []
        self.free: list[int] = []
        self.registers = 0
        self.lexical: dict[LexicalNode, int] = {}

    def alloc(self) -> int:
        if self.free:
            return self.free.pop()
        self.registers += 1
        return self.registers - 1

    def release(self, *regs: int) -> None:
        self.free.extend(regs)

    def emit(self, op: Op, dst: int, a: int = 0, b: int = 0, c: int = 0, x: float = 0.0) -> int:
        self.code.append((int(op), dst, a, b, c))
        self.values.append(float(x))
        return dst

    def lexical_column(self, node: LexicalNode) -> int:
        return len(COLUMNS) + self.lexical.setdefault(node, len(self.lexical))

    # --- selectors -> 0/1 masks ---------------------------------------------------

    def selector(self, sel: ir.Selector) -> int:
        if isinstance(sel, ir.Const):
            return self.emit(Op.FILL, self.alloc(), x=1.0 if sel.value else 0.0)
        if isinstance(sel, ir.Cmp):
            code, col = CMP_CODES[sel.op], column_index(sel.feature)
            if sel.other is not None:
                return self.emit(Op.CMP_KQ, self.alloc(), col, code, column_index(sel.other), sel.offset)
            op = Op.CMP_K if sel.side is Side.KEY else Op.CMP_Q
            return self.emit(op, self.alloc(), col, code, x=sel.offset)
        if isinstance(sel, (ir.Cls, ir.Words)):
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
            logits = self.emit(Op.FILL, self.alloc(), x=0.0)
            for term in p.terms:
                column = self.key_column(term)
                if column is not None:
                    self.emit(Op.ADD_KEY_COL, logits, column, x=term.weight)
                    continue
                value = self.term(term)
                self.emit(Op.ADD_SCALED, logits, value, x=term.weight)
                self.release(value)
            return self.emit(Op.SOFTMAX, logits, logits)
        raise TypeError(f"not a pattern: {p!r}")

    def key_column(self, term: ir.ScoreTerm) -> int | None:
        """The input column of a term that is one key-side class, word set or table.

        Class and word-set columns hold 0/1, so such a term adds weight * column.
        """
        if len(term.factors) != 1:
            return None
        f = term.factors[0]
        if isinstance(f, ir.Cls) and f.side is Side.KEY:
            return column_index(f.cls)
        if isinstance(f, (ir.Words, ir.Table)) and f.side is Side.KEY:
            return self.lexical_column(f)
        return None

    def term(self, term: ir.ScoreTerm) -> int:
        """The product of a score term's factors (its weight is applied by ADD_SCALED)."""
        if not term.factors:
            return self.emit(Op.FILL, self.alloc(), x=1.0)
        acc = self.factor(term.factors[0])
        for factor in term.factors[1:]:
            other = self.factor(factor)
            self.emit(Op.MUL, acc, acc, other)
            self.release(other)
        return acc

    def factor(self, f: ir.Factor) -> int:
        if isinstance(f, ir.Dist):
            return self.emit(Op.DIST if f.kind is Distance.DIST else Op.LOG_DIST, self.alloc())
        if isinstance(f, ir.Table):
            op = Op.KEY_COL if f.side is Side.KEY else Op.QUERY_COL
            return self.emit(op, self.alloc(), self.lexical_column(f))
        return self.selector(f)


def lower(pattern: ir.Pattern) -> Tape:
    """Lower one program (any IR; canonical or not, the meaning is the same)."""
    b = _Builder()
    result = b.pattern(pattern)
    code = np.array(b.code, dtype=np.int64).reshape(-1, WIDTH)
    return Tape(code, np.array(b.values, dtype=np.float64), b.registers, tuple(b.lexical), result)
