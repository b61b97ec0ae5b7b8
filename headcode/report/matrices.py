"""Attention matrices as the pages carry them: the lower triangle, one byte a value.

A causal matrix has nothing above its diagonal, so only the n(n+1)/2 entries of the
lower triangle are kept, row by row (entry (i, j), j <= i, at i(i+1)/2 + j; the
browser script reads them back the same way). Values are stored as
round(255 * sqrt(v)): attention is mostly small numbers beside one large one (the
sink), and the square root keeps a weight of 0.01 (byte 26) apart from 0.005 (byte
18), where a linear byte would round both to 1 or 3. The error is at most
(1/255) * sqrt(v) + 1/65025, well under what a colour can show.
"""

from __future__ import annotations

import base64
import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _lower(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(n)


def pack(matrices: np.ndarray) -> np.ndarray:
    """uint8[..., n(n+1)/2]: the quantised lower triangle of each [..., n, n] matrix."""
    matrices = np.asarray(matrices)
    rows, cols = _lower(matrices.shape[-1])
    values = np.clip(matrices[..., rows, cols].astype(np.float64), 0.0, 1.0)
    return np.rint(np.sqrt(values) * 255.0).astype(np.uint8)


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """float64[n, n]: the matrix `pack` kept (zero above the diagonal)."""
    packed = np.asarray(packed)
    if packed.shape != (n * (n + 1) // 2,):
        raise ValueError(f"{packed.shape[0]} packed values do not fill a {n}x{n} lower triangle")
    out = np.zeros((n, n))
    out[_lower(n)] = (packed.astype(np.float64) / 255.0) ** 2
    return out


def encode(packed: np.ndarray) -> str:
    """The packed bytes as base64 text, to embed in a page."""
    return base64.b64encode(np.ascontiguousarray(packed, dtype=np.uint8).tobytes()).decode("ascii")
