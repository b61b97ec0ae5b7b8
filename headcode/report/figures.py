"""The report's static figures, drawn with matplotlib: the overview's plots (each as
SVG and PNG, to download) and a head's examples as one PNG for a paper
(`headcode report --format png`).

Plots are written into a directory the caller is filling (the report's new
directory, swapped into place as a whole), so no file here needs its own atomic
write. SVG text is drawn as paths (matplotlib's default), so a figure needs no font
on the reader's machine, and files carry no date: the same library gives the same
bytes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headcode.report.examples import Example
from headcode.report.families import COLOURS, LOW
from headcode.report.matrices import unpack

LEVEL_COLOURS = {"short": "#4e79a7", "full": "#2b4a6f"}  # the same in every plot
BASELINE_NAMES = {"bos": "first token", "uniform": "uniform", "best_single": "best single pattern",
                  "greedy_mixture": "greedy mixture of 3"}


@dataclass(frozen=True)
class Figure:
    name: str  # file stem: NAME.svg and NAME.png in the figures directory
    title: str
    caption: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "headcode", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


# What matplotlib writes into an SVG that names other places: the DTD's address and an
# RDF block of creator links. Neither is needed to draw it; the report holds no address
# but the two XML namespaces an SVG file must declare.
_ELSEWHERE = re.compile(r"<!DOCTYPE[^>]*>\s*|\s*<metadata>.*?</metadata>", re.DOTALL)


def _save(fig, directory: Path, name: str) -> None:
    svg = io.StringIO()
    fig.savefig(svg, format="svg", metadata={"Date": None}, bbox_inches="tight")
    (directory / f"{name}.svg").write_text(_ELSEWHERE.sub("", svg.getvalue()), encoding="utf-8")
    fig.savefig(directory / f"{name}.png", format="png", dpi=150, metadata={"Software": None}, bbox_inches="tight")
    _pyplot().close(fig)


def _finish(fig, ax, directory: Path, name: str, x: str, y: str) -> None:
    """Label a plot's axes, add its legend, and save it as NAME.svg and NAME.png."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    _save(fig, directory, name)


def overview_figures(ov, directory: Path) -> list[Figure]:
    """The overview's plots (`views.Overview`), written into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    out = [_scores(ov, directory), _layers(ov, directory), _sizes(ov, directory), _grid(ov, directory)]
    replacement = _replacement(ov, directory)
    return out + ([replacement] if replacement else [])


def _scores(ov, directory: Path) -> Figure:
    plt = _pyplot()
    bars = [(f"{s.level.value} programs", s.mean_test_iou, LEVEL_COLOURS[s.level.value])
            for s in ov.levels if s.mean_test_iou is not None]
    bars += [(BASELINE_NAMES[k], v, "#bab0ac") for k, v in sorted(ov.baselines.items(), key=lambda kv: -kv[1])]
    fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(bars) + 1.0))
    y = np.arange(len(bars))[::-1]
    ax.barh(y, [b[1] for b in bars], color=[b[2] for b in bars])
    for yy, (_, value, _) in zip(y, bars):
        ax.text(value + 0.01, yy, f"{value:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, [b[0] for b in bars])
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean test IoU over heads (rows 1..n-1)")
    fig.tight_layout()
    _save(fig, directory, "scores")
    return Figure("scores", "Programs against baselines",
                  "Mean test IoU over the library's heads of each level's programs and of the baseline programs "
                  "every head was compared with (recorded in the library).")


def _layers(ov, directory: Path) -> Figure:
    plt = _pyplot()
    layers = ov.library.model.num_layers
    fig, ax = plt.subplots(figsize=(6, 3.2))
    lines = [(f"{s.level.value} programs", LEVEL_COLOURS[s.level.value], "-o",
              lambda v, lv=s.level: v.at(lv).entry.test.get("iou") if v.at(lv) else None) for s in ov.levels]
    lines.append((BASELINE_NAMES["greedy_mixture"], "#bab0ac", "--", lambda v: v.entry.baselines.get("greedy_mixture")))
    for label, colour, style, value in lines:
        xs, ys = [], []
        for layer in range(layers):
            got = [x for v in ov.views if v.head.layer == layer and (x := value(v)) is not None]
            if got:
                xs.append(layer)
                ys.append(float(np.mean(got)))
        if xs:
            ax.plot(xs, ys, style, label=label, markersize=3, color=colour)
    ax.set_ylim(0, 1)
    _finish(fig, ax, directory, "layers", "layer", "mean test IoU")
    return Figure("layers", "IoU by layer", "Mean test IoU of the heads of each layer, per level of detail, and of "
                                            "the greedy mixture baseline.")


def _sizes(ov, directory: Path) -> Figure:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    chars = {s.level: [v.at(s.level).program.chars for v in ov.views if v.at(s.level)] for s in ov.levels}
    top = max((max(c) for c in chars.values() if c), default=10)
    bins = np.logspace(0, np.log10(max(top, 10)) + 0.05, 40)
    for level, values in chars.items():
        ax.hist(values, bins=bins, alpha=0.75, color=LEVEL_COLOURS[level.value],
                label=f"{level.value} (median {np.median(values):,.0f})")
    ax.set_xscale("log")
    _finish(fig, ax, directory, "sizes", "program length (characters of canonical text)", "heads")
    return Figure("sizes", "Program sizes", "How long each head's program is, per level of detail.")


def _grid(ov, directory: Path) -> Figure:
    """The layer x head grid, one vector rectangle a head (so the SVG stays crisp)."""
    plt = _pyplot()
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    grid = ov.grid
    layers, heads = len(grid), len(grid[0]) if grid else 0
    cells, colours = [], []
    for layer, row in enumerate(grid):
        for head, view in enumerate(row):
            cells.append(Rectangle((head - 0.45, layer - 0.45), 0.9, 0.9))
            colours.append(view.cell if view is not None else "#eeeeee")
    fig, ax = plt.subplots(figsize=(max(3.0, 0.28 * heads + 2.8), max(3.0, 0.2 * layers + 1)))
    ax.add_collection(PatchCollection(cells, facecolors=colours, edgecolors="none"))
    ax.set_xlim(-0.6, heads - 0.4)
    ax.set_ylim(layers - 0.4, -0.6)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(0, layers, max(1, layers // 15)))
    ax.legend(handles=[Patch(color=COLOURS[f], label=f"{f.value} ({n})") for f, n in ov.families],
              loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8)
    ax.set_title(f"{ov.library.model.name}: family of each head's {ov.shown.value} program\n"
                 f"(paler: lower test IoU, {LOW} or less palest)", fontsize=8)
    fig.tight_layout()
    _save(fig, directory, "grid")
    return Figure("grid", "Heads at a glance", "The grid above as a static figure.")


def _replacement(ov, directory: Path) -> Figure | None:
    """Per-head cost of replacing it alone, if the library records it (`replace --measure-heads`)."""
    plt = _pyplot()
    series = {s.level: sorted((v.at(s.level).entry.validation["ppl_increase"] for v in ov.views
                               if v.at(s.level) and "ppl_increase" in v.at(s.level).entry.validation), reverse=True)
              for s in ov.levels}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    for level, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), np.maximum(np.array(values) * 100, 1e-4),
                color=LEVEL_COLOURS[level.value], label=f"{level.value} programs")
    ax.set_yscale("log")
    _finish(fig, ax, directory, "replacement", "heads, most costly first", "perplexity increase, % (log)")
    return Figure("replacement", "What replacing one head costs",
                  "Perplexity increase on the validation split when each head alone is replaced by its program "
                  "(recorded by `headcode replace --measure-heads`), sorted. The library records no curve of "
                  "several heads replaced at once; `headcode replace` measures one.")


def _ticks(ax, labels: list[str]) -> None:
    n = len(labels)
    step = max(1, int(np.ceil(n / 48)))
    where = list(range(0, n, step))
    ax.set_xticks(where, [labels[k] for k in where], rotation=90, fontsize=6)
    ax.set_yticks(where, [labels[k] for k in where], fontsize=6)


def head_png(title: str, examples: list[tuple[Example, list[str]]], path: Path) -> None:
    """A head's examples as one PNG: a row per example of real attention, the
    program's, and their difference (program - real), token labels on the axes."""
    plt = _pyplot()
    from matplotlib.colors import PowerNorm

    rows = len(examples)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 4.4 * rows), squeeze=False)
    for (example, labels), row in zip(examples, axes):
        n = len(labels)
        real, program = unpack(example.real, n), unpack(example.program, n)
        diff = program - real
        span = max(float(np.abs(diff).max()), 1e-3)
        panels = [(real, "real attention", dict(cmap="viridis", norm=PowerNorm(0.5, 0, 1))),
                  (program, "program", dict(cmap="viridis", norm=PowerNorm(0.5, 0, 1))),
                  (diff, "program - real", dict(cmap="RdBu_r", vmin=-span, vmax=span))]
        for ax, (matrix, what, style) in zip(row, panels):
            shown = np.ma.masked_where(np.triu(np.ones((n, n), dtype=bool), 1), matrix)
            image = ax.imshow(shown, interpolation="nearest", **style)
            _ticks(ax, labels)
            ax.set_title(f"{what} ({example.kind.value}, sequence {example.sequence}, IoU {example.iou:.3f})",
                         fontsize=8)
            ax.set_xlabel("key")
            ax.set_ylabel("query")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=130, metadata={"Software": None})
    plt.close(fig)
