"""Attention matrices for people: a terminal heatmap and a PNG heatmap.

Imports only headcode.fileio; callers pass a matrix and token labels.
"""

from __future__ import annotations

import os

import numpy as np

_SHADES = " .:-=+*#%@"


def _label(token: str, width: int) -> str:
    text = token.replace("\n", "\\n") or "∅"
    return text[:width].ljust(width)


def terminal_heatmap(matrix: np.ndarray, tokens: list[str], label_width: int = 10) -> str:
    """Rows are queries, columns keys; darker characters mean more attention.

    Each cell is two characters wide; column headers are the keys' first letters,
    written vertically, so a 40-token sentence fits an 100-column terminal.
    """
    n = matrix.shape[0]
    peak = float(matrix.max()) if matrix.size else 1.0
    scale = (len(_SHADES) - 1) / (peak or 1.0)
    lines = []
    header_rows = min(max((len(t) for t in tokens), default=1), 4)
    for r in range(header_rows):
        cells = "".join((t.replace("\n", "⏎")[r] if r < len(t) else " ").ljust(2) for t in tokens)
        lines.append(" " * (label_width + 4) + cells)
    for i in range(n):
        row = "".join(_SHADES[int(round(v * scale))] * 2 if j <= i else "  " for j, v in enumerate(matrix[i]))
        lines.append(f"{i:>3} {_label(tokens[i], label_width)}{row}")
    lines.append(f"scale: '{_SHADES[1]}' low .. '{_SHADES[-1]}' = {peak:.2f}")
    return "\n".join(lines)


def png_heatmap(matrix: np.ndarray, tokens: list[str], title: str, path: str | os.PathLike) -> None:
    """Write a labelled heatmap PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from headcode.fileio import atomic_path

    labels = [t.replace("\n", "\\n") or "∅" for t in tokens]
    size = max(4.0, 0.3 * len(tokens) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(float(matrix.max()), 1e-9))
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
