"""The fixed Numba kernels that execute lowered programs (see `lower` for the tape).

`run_tapes` is compiled once per machine (`cache=True` stores it under Numba's cache
directory) and then runs any number of programs: a program is data, never code.
One call runs a whole batch of programs on one sequence, so a library of hundreds
of heads costs one dispatch from Python, not hundreds.

Each instruction loops over the lower triangle only (keys j <= i); the numbering of
opcodes and comparison codes must match `headcode.compiler.lower.Op` / `CMP_CODES`
(numba cannot read an IntEnum cheaply, so they are repeated here as literals and a
test checks they agree).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Opcode literals (mirrors lower.Op; tests/test_compiler.py checks the mirror).
FILL, CMP_KQ, CMP_K, CMP_Q, NOT, AND, OR = 0, 1, 2, 3, 4, 5, 6
UNIFORM, NEAREST, EARLIEST, DECAY, FALLBACK, MIX_ADD, MIX_NORM = 7, 8, 9, 10, 11, 12, 13
KEY_COL, QUERY_COL, DIST, LOG_DIST, MUL, ADD_SCALED, SOFTMAX, MIX_ZERO, ADD_KEY_COL = (
    14, 15, 16, 17, 18, 19, 20, 22, 23)


@numba.njit(cache=True)
def _row_empty(reg, i):
    # Rows hold non-negative weights, so a row is empty exactly when all are zero.
    for j in range(i + 1):
        if reg[i, j] != 0.0:
            return False
    return True


@numba.njit(cache=True)
def _select(regs, op, dst, a, rate, n):
    # dst may be a: every row is read before it is written. Rows are taken as 1-D
    # slices so the inner loops are plain contiguous loops LLVM can vectorise.
    for i in range(n):
        src = regs[a, i, : i + 1]
        row = regs[dst, i, : i + 1]
        if op == UNIFORM:
            count = 0
            for j in range(i + 1):
                count += src[j] != 0.0
            w = 1.0 / count if count else 0.0
            for j in range(i + 1):
                row[j] = w if src[j] != 0.0 else 0.0
        elif op == DECAY:
            last = -1
            for j in range(i + 1):
                if src[j] != 0.0:
                    last = j
            total = 0.0
            w = 1.0  # rate**(last - j), built up from the nearest key backwards
            for j in range(i, -1, -1):
                if j < last:
                    w = w * rate
                v = w if src[j] != 0.0 else 0.0
                row[j] = v
                total += v
            if total > 0.0:
                inv = 1.0 / total
                for j in range(i + 1):
                    row[j] *= inv
        else:
            pick = -1
            for j in range(i + 1):
                if src[j] != 0.0:
                    pick = j
                    if op == EARLIEST:
                        break
            for j in range(i + 1):
                row[j] = 0.0
            if pick >= 0:
                row[pick] = 1.0


@numba.njit(cache=True)
def _softmax(regs, dst, n):
    for i in range(n):
        row = regs[dst, i, : i + 1]
        top = row.max()
        total = 0.0
        for j in range(i + 1):
            e = math.exp(row[j] - top)
            row[j] = e
            total += e
        inv = 1.0 / total
        for j in range(i + 1):
            row[j] *= inv


@numba.njit(cache=True)
def _step(regs, weights, inputs, op, dst, a, b, c, x, n):
    """Execute one instruction on the lower triangle of register `dst`."""
    if op == SOFTMAX:
        _softmax(regs, dst, n)
    elif op == UNIFORM or op == NEAREST or op == EARLIEST or op == DECAY:
        _select(regs, op, dst, a, x, n)
    elif op == FALLBACK:
        for i in range(n):
            if _row_empty(regs[a], i):
                for j in range(i + 1):
                    regs[dst, i, j] = regs[b, i, j]
            elif dst != a:
                for j in range(i + 1):
                    regs[dst, i, j] = regs[a, i, j]
    elif op == MIX_ZERO:
        for i in range(n):
            weights[dst, i] = 0.0
            for j in range(i + 1):
                regs[dst, i, j] = 0.0
    elif op == MIX_ADD:
        for i in range(n):
            if not _row_empty(regs[a], i):
                weights[dst, i] += x
                for j in range(i + 1):
                    regs[dst, i, j] += x * regs[a, i, j]
    elif op == MIX_NORM:
        for i in range(n):
            w = weights[a, i]
            for j in range(i + 1):
                regs[dst, i, j] = regs[a, i, j] / w if w > 0.0 else 0.0
    elif op == CMP_KQ or op == CMP_K or op == CMP_Q:
        _cmp(regs, inputs, op, dst, a, b, c, x, n)
    else:
        _elementwise(regs, inputs, op, dst, a, b, x, n)


@numba.njit(cache=True)
def _bounds(code):
    """A comparison of integers as `lo <= left - right <= hi`, negated for NE."""
    inf = math.inf
    if code == 0 or code == 1:
        return 0.0, 0.0, code == 1
    if code == 2:
        return -inf, -1.0, False
    if code == 3:
        return -inf, 0.0, False
    if code == 4:
        return 1.0, inf, False
    return 0.0, inf, False


@numba.njit(cache=True)
def _cmp(regs, inputs, op, dst, a, code, c, x, n):
    # Features are integers, so every operator is an interval test on the
    # difference: one branch-free loop instead of a dispatch per element.
    lo, hi, negate = _bounds(code)
    out = regs[dst]
    if op == CMP_KQ:
        for i in range(n):
            right = inputs[i, c] + x
            for j in range(i + 1):
                d = inputs[j, a] - right
                out[i, j] = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
    elif op == CMP_K:
        hits = np.empty(n)
        for j in range(n):
            d = inputs[j, a] - x
            hits[j] = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = hits[j]
    else:
        for i in range(n):
            d = inputs[i, a] - x
            v = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
            for j in range(i + 1):
                out[i, j] = v


@numba.njit(cache=True)
def _elementwise(regs, inputs, op, dst, a, b, x, n):
    # Each branch is its own loop, so the inner loops carry no dispatch.
    out = regs[dst]
    if op == FILL:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = x
    elif op == NOT:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = 1.0 - regs[a, i, j]
    elif op == AND or op == MUL:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = regs[a, i, j] * regs[b, i, j]
    elif op == OR:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = max(regs[a, i, j], regs[b, i, j])
    elif op == KEY_COL:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = inputs[j, a]
    elif op == QUERY_COL:
        for i in range(n):
            v = inputs[i, a]
            for j in range(i + 1):
                out[i, j] = v
    elif op == DIST:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = float(i - j)
    elif op == LOG_DIST:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = math.log1p(float(i - j))
    elif op == ADD_KEY_COL:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] += x * inputs[j, a]
    elif op == ADD_SCALED:
        src = regs[a]
        for i in range(n):
            for j in range(i + 1):
                out[i, j] += x * src[i, j]
    else:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = math.nan  # unknown opcode: poison the result rather than guess


@numba.njit(cache=True, parallel=True)
def run_tapes(code, values, starts, results, registers, inputs, out, workers):
    """Run programs p = 0..k-1 (instructions code[starts[p]:starts[p+1]]) on one sequence.

    `workers` is how many register files (parallel workers) to use; `inputs` is float64[n, columns]; `out` is float64[k, n, n], zero above the diagonal
    on entry; program p's matrix is left in out[p]. Programs are independent, so they
    run in parallel: one register file per worker (allocating one per program would
    cost a fresh zeroed page set every time), programs dealt out round-robin.
    """
    n = inputs.shape[0]
    programs = len(starts) - 1
    workers = max(1, min(workers, programs))
    for w in numba.prange(workers):
        regs = np.empty((registers, n, n))
        weights = np.zeros((registers, n))
        for p in range(w, programs, workers):
            for k in range(starts[p], starts[p + 1]):
                _step(regs, weights, inputs, code[k, 0], code[k, 1], code[k, 2], code[k, 3], code[k, 4], values[k], n)
            # The result, with the whole-program rule: an empty row puts all weight on key 0.
            r = results[p]
            for i in range(n):
                if _row_empty(regs[r], i):
                    out[p, i, 0] = 1.0
                else:
                    for j in range(i + 1):
                        out[p, i, j] = regs[r, i, j]
