"""The fixed Numba kernels that execute lowered programs (see `lower` for the tape).

`run_tapes` is compiled once per machine (`cache=True` stores it under Numba's cache
directory) and then runs any number of programs: a program is data, never code.
One call runs a whole batch of programs on one sequence, so a library of hundreds
of heads costs one dispatch from Python, not hundreds.

Each instruction loops over the lower triangle only (keys j <= i); the numbering of
opcodes and comparison codes must match `headcode.compiler.lower.Op` / `CMP_CODES`
(numba cannot read an IntEnum cheaply, so they are repeated here as literals and a
test checks they agree).

Everything lives in this one file on purpose: Numba's disk cache of `run_tapes` is
invalidated when *this* file changes, not when a callee in another module does.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Opcode literals (mirrors lower.Op; tests/test_compiler.py checks the mirror).
FILL, CMP_KQ, CMP_K, CMP_Q, NOT, AND, OR = 0, 1, 2, 3, 4, 5, 6
UNIFORM, NEAREST, EARLIEST, DECAY, FALLBACK, MIX_ADD, MIX_NORM = 7, 8, 9, 10, 11, 12, 13
MUL, SOFTMAX, MIX_ZERO = 18, 20, 22
V_FILL, V_CMP, V_COL, V_MUL, V_AXPY = 24, 25, 26, 27, 28
SCORE, SCORE_CMP, SCORE_DIST, SCORE_LOG_DIST, SCORE_MATRIX = 29, 30, 31, 32, 33


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


# exp(x) for x <= 0, written so that LLVM vectorises it: a call to math.exp per key
# cannot be, and was the larger part of a score program's time. x = k ln 2 + r with
# |r| <= ln(2)/2; exp(r) is its Taylor series to degree 12 (relative error about
# 3e-16, the same order as libm's) and 2**k is built from its bits. Below _LOWEST,
# exp(x) < 3.3e-308 is taken as 0 (2**k must stay a normal number).
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # k * _LN2_HI is exact
_ROUND = 6755399441055744.0  # 1.5 * 2**52: (y + _ROUND) - _ROUND is y rounded to an integer
_LOWEST = -708.0


@numba.njit(cache=True, fastmath={"contract"})
def _exp_parts(x):
    """exp(x) for x <= 0 as (p, bits): exp(x) = p * (the float64 with these bits, 2**k)."""
    y = max(x, _LOWEST)
    k = (y * _LOG2E + _ROUND) - _ROUND
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0  # 1/12!, then Horner's rule down to 1/0!
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return (p if x >= _LOWEST else 0.0), (np.int64(k) + 1023) << 52


@numba.njit(cache=True)
def exp_nonpositive(xs):
    """exp of each x <= 0, exactly as the softmax computes it (for tests)."""
    out = np.empty(len(xs))
    bits = np.empty(len(xs), dtype=np.int64)
    for t in range(len(xs)):
        out[t], bits[t] = _exp_parts(xs[t])
    return out * bits.view(np.float64)


@numba.njit(cache=True, fastmath={"reassoc"})
def _scale_and_sum(regs, dst, i, m, scale):
    # reassoc lets LLVM split the sum into vector lanes (a plain sum is one long chain).
    total = 0.0
    for j in range(m):
        e = regs[dst, i, j] * scale[j]
        regs[dst, i, j] = e
        total += e
    return total


@numba.njit(cache=True)
def _softmax(regs, dst, bits, scale, n):
    # `bits` is a worker's int64 scratch row for the 2**k factors of one row's exps,
    # `scale` the same memory read as float64.
    for i in range(n):
        m = np.uint64(i + 1)
        top = regs[dst, i, 0]
        for j in range(m):
            top = max(top, regs[dst, i, j])
        for j in range(m):
            p, b = _exp_parts(regs[dst, i, j] - top)
            regs[dst, i, j] = p
            bits[j] = b
        inv = 1.0 / _scale_and_sum(regs, dst, i, m, scale)
        for j in range(m):
            regs[dst, i, j] *= inv


@numba.njit(cache=True, inline="always")
def _step(regs, weights, vecs, bits, scale, cols, back, code, k, x, n):
    """Execute instruction k (op, dst, a, b, c, d, e, lo, hi) with float operand x.

    Inlined into `run_tapes`: a call passes each array as a dozen scalars, which
    cost more than a whole vector instruction.
    """
    op, dst, a, b, c = code[k, 0], code[k, 1], code[k, 2], code[k, 3], code[k, 4]
    if SCORE <= op <= SCORE_MATRIX:
        _score(regs, vecs, cols, back, op, dst, a, b, c, code[k, 5], code[k, 6], code[k, 7], code[k, 8], x, n)
    elif V_FILL <= op <= V_AXPY:
        _vector(vecs, cols, op, dst, a, b, x, n)
    elif op == SOFTMAX:
        _softmax(regs, dst, bits, scale, n)
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
        _cmp(regs, cols, op, dst, a, b, c, x, n)
    else:
        _elementwise(regs, op, dst, a, b, x, n)


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
def _cmp(regs, cols, op, dst, a, code, c, x, n):
    # Features are integers, so every operator is an interval test on the
    # difference: one branch-free loop instead of a dispatch per element.
    lo, hi, negate = _bounds(code)
    out = regs[dst]
    if op == CMP_KQ:
        left = cols[a]
        for i in range(n):
            right = cols[c, i] + x
            for j in range(i + 1):
                d = left[j] - right
                out[i, j] = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
    elif op == CMP_K:
        hits = np.empty(n)
        for j in range(n):
            d = cols[a, j] - x
            hits[j] = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = hits[j]
    else:
        for i in range(n):
            d = cols[a, i] - x
            v = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
            for j in range(i + 1):
                out[i, j] = v


@numba.njit(cache=True)
def _elementwise(regs, op, dst, a, b, x, n):
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
    else:
        for i in range(n):
            for j in range(i + 1):
                out[i, j] = math.nan  # unknown opcode: poison the result rather than guess


@numba.njit(cache=True)
def _vector(vecs, cols, op, dst, a, b, x, n):
    """The O(n) instructions on vector registers (one-sided factors of score terms)."""
    if op == V_FILL:
        for t in range(n):
            vecs[dst, t] = x
    elif op == V_CMP:
        lo, hi, negate = _bounds(b)
        for t in range(n):
            d = cols[a, t] - x
            vecs[dst, t] = 1.0 if ((d >= lo) & (d <= hi)) != negate else 0.0
    elif op == V_COL:
        for t in range(n):
            vecs[dst, t] = cols[a, t]
    elif op == V_MUL:
        for t in range(n):
            vecs[dst, t] = vecs[a, t] * vecs[b, t]
    else:  # V_AXPY
        for t in range(n):
            vecs[dst, t] = vecs[a, t] + x * vecs[b, t]


@numba.njit(cache=True)
def _score(regs, vecs, cols, back, op, dst, a, b, c, d, e, lo, hi, x, n):
    """One fused score term: regs[dst][i, j] += q[i] * k[j] * r(i, j) on the band.

    q = vecs[a], k = vecs[b]; the band is lo <= j - i <= hi, so a term such as
    `prev(2)` visits one key per row. Rows where q is 0 add nothing and are skipped
    (query word tables are mostly 0). The inner loops index with unsigned integers:
    numba then emits no negative-index wrap-around and LLVM vectorises them; and
    they take no slices, whose reference counting would cost more than a short row.
    """
    if op == SCORE_CMP or op == SCORE_MATRIX:
        clo, chi, negate = _bounds(d)  # SCORE_CMP only
        for i in range(n):
            qi = vecs[a, i]
            if qi == 0.0:
                continue
            start = np.uint64(max(0, i + lo))
            stop = np.uint64(max(0, min(i, i + hi) + 1))
            if op == SCORE_CMP:
                right = cols[e, i] + x
                for j in range(start, stop):
                    diff = cols[c, j] - right
                    hit = ((diff >= clo) & (diff <= chi)) != negate
                    regs[dst, i, j] += qi * vecs[b, j] if hit else 0.0
            else:
                for j in range(start, stop):
                    regs[dst, i, j] += qi * vecs[b, j] * regs[c, i, j]
        return
    # r depends on i - j only (1, dist or log_dist): back[kind, n - 1 - i + j] is r.
    kind = 0 if op == SCORE_DIST else (1 if op == SCORE_LOG_DIST else 2)
    if lo == hi:
        # One key per row (`prev(3)`, `self` times one-sided factors): a loop over rows.
        r = back[kind, n - 1 + lo] if lo > -n else 0.0
        for i in range(max(0, -lo), n):
            regs[dst, i, i + lo] += vecs[a, i] * vecs[b, i + lo] * r
        return
    for i in range(n):
        qi = vecs[a, i]
        if qi == 0.0:
            continue
        start = np.uint64(max(0, i + lo))
        stop = np.uint64(max(0, min(i, i + hi) + 1))
        shift = np.uint64(n - 1 - i)
        for j in range(start, stop):
            regs[dst, i, j] += qi * vecs[b, j] * back[kind, shift + j]


@numba.njit(cache=True, parallel=True)
def run_tapes(code, values, starts, results, registers, vectors, cols, back, bits, scale, out):
    """Run programs p = 0..k-1 (instructions code[starts[p]:starts[p+1]]) on one sequence.

    `registers`/`vectors` are how many matrix/vector registers a program may use;
    `cols` holds the input columns, float64[columns, n]; `back` the relations that
    depend on d = i - j only, at index n-1-d (backwards, so a row of keys reads
    them forwards): d, log(1 + d) (a table instead of log1p per pair), and 1.
    `bits` (int64[workers, n]) and `scale` (the same memory as float64) are scratch,
    one row per parallel worker. `out` is float64[k, n, n], zero above the diagonal
    on entry; program p's matrix is left in out[p]. Programs are independent, so they
    run in parallel: one register file per worker (allocating one per program would
    cost a fresh zeroed page set every time), programs dealt out round-robin.
    """
    n = cols.shape[1]
    programs = len(starts) - 1
    workers = max(1, min(len(bits), programs))
    for w in numba.prange(workers):
        regs = np.empty((registers, n, n))
        weights = np.zeros((registers, n))
        vecs = np.empty((vectors, n))
        my_bits, my_scale = bits[w], scale[w]
        for p in range(w, programs, workers):
            for k in range(starts[p], starts[p + 1]):
                _step(regs, weights, vecs, my_bits, my_scale, cols, back, code, k, values[k], n)
            # The result, with the whole-program rule: an empty row puts all weight on key 0.
            r = results[p]
            for i in range(n):
                if _row_empty(regs[r], i):
                    out[p, i, 0] = 1.0
                else:
                    for j in range(i + 1):
                        out[p, i, j] = regs[r, i, j]
