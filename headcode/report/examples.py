"""The evidence of each head: real attention and its program's, recomputed on held-out
text, and the examples a page shows (a typical sequence and the worst fitted).

One pass over the sequences runs the model (only up to the last layer asked for),
runs every program (`compiler.ProgramBatch`, a chunk of heads at a time, so memory
stays bounded at 512 tokens and 700 heads) and scores each head on each sequence
with the IoU `explain` records (`metrics.iou`, rows 1..n-1). The packed matrices
(`report.matrices`) of a sequence are kept while they fit in `budget` bytes; a
sequence chosen as an example that did not fit is run again at the end, for the
heads that chose it only. So the figures are the same whatever the budget, and a
large model on long text costs a second forward of a few sequences, not memory.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from headcode import metrics
from headcode.compiler import ProgramBatch
from headcode.dsl import Program
from headcode.heads import Head
from headcode.report.matrices import pack
from headcode.synth.capture import record_attention

HEAD_CHUNK = 64  # heads whose matrices are held at once (64 x 512 x 512 float64 = 134 MB)
BUDGET = 512 * 2**20  # bytes of packed matrices kept from the first pass


class Kind(enum.Enum):
    """Why a sequence is shown for a head, in the order a page shows them."""

    TYPICAL = "typical"  # the median IoU over the text's sequences
    WORST = "worst"  # the lowest IoU: where the program fits this head worst
    BEST = "best"
    OTHER = "another"  # further examples, at evenly spaced ranks of IoU


@dataclass(frozen=True)
class Example:
    kind: Kind
    sequence: int  # index into the text's sequences
    iou: float  # this head's program on this sequence
    real: np.ndarray  # packed (report.matrices) real attention
    program: np.ndarray  # packed attention of the program


@dataclass(frozen=True)
class Evidence:
    """One head on the text: its program's IoU on every sequence, and the examples."""

    ious: np.ndarray  # float64[sequences]
    examples: tuple[Example, ...]

    @property
    def mean_iou(self) -> float:
        """The mean over sequences (each weighs the same, as `explain` records it)."""
        return float(np.nanmean(self.ious))


def choose(ious: Sequence[float], k: int) -> list[tuple[Kind, int]]:
    """Up to `k` distinct sequences to show: the typical one (median IoU; the lower of
    the two middle ones), the worst, the best, then evenly spaced ranks. Ties go to
    the earlier sequence."""
    order = [int(s) for s in np.argsort(np.nan_to_num(np.asarray(ious, dtype=np.float64), nan=-1.0), kind="stable")]
    if not order or k < 1:
        return []
    ranked = [(Kind.TYPICAL, (len(order) - 1) // 2), (Kind.WORST, 0), (Kind.BEST, len(order) - 1)]
    ranked += [(Kind.OTHER, int(r)) for r in np.linspace(0, len(order) - 1, num=k + 2)[1:-1].round()]
    out, seen = [], set()
    for kind, rank in ranked:
        if order[rank] not in seen and len(out) < k:
            seen.add(order[rank])
            out.append((kind, order[rank]))
    return out


class _Chunk:
    """Some heads and their programs, batched to run together."""

    def __init__(self, heads: Sequence[Head], programs: Mapping[Head, Program]):
        self.heads = list(heads)
        pool = list(dict.fromkeys(programs[h] for h in self.heads))
        self.batch = ProgramBatch(pool)
        slot = {p: k for k, p in enumerate(pool)}
        self.which = np.array([slot[programs[h]] for h in self.heads], dtype=np.int64)
        self.layers = np.array([h.layer for h in self.heads], dtype=np.int64)
        self.index = np.array([h.head for h in self.heads], dtype=np.int64)

    def matrices(self, attention: np.ndarray, table) -> tuple[np.ndarray, np.ndarray]:
        """float64 [heads, n, n] each: the real attention and the programs'."""
        return attention[self.layers, self.index].astype(np.float64), self.batch.evaluate(table)[self.which]


def collect(model, split, programs: Mapping[Head, Program], k: int, progress: bool = True,
            budget: int = BUDGET) -> dict[Head, Evidence]:
    """Each head's Evidence on `split` (a synth.data.Split, not captured), with up to
    `k` examples, for the heads of `programs` (head -> the program shown)."""
    from tqdm import tqdm

    heads = sorted(programs)
    if not heads or not len(split):
        return {}
    layers = max(h.layer for h in heads) + 1
    chunks = [_Chunk(heads[c:c + HEAD_CHUNK], programs) for c in range(0, len(heads), HEAD_CHUNK)]
    row = {h: r for r, h in enumerate(heads)}

    def run(s: int, wanted=None) -> dict[Head, tuple[np.ndarray, np.ndarray, float]]:
        """Head -> (packed real, packed program, iou) on sequence s (heads of `wanted` only)."""
        table = split.tables[s]
        attention = record_attention(model, table.ids, layers=layers)
        out = {}
        for chunk in chunks:
            if wanted is not None and not wanted.intersection(chunk.heads):
                continue
            real, predicted = chunk.matrices(attention, table)
            ious = np.atleast_1d(metrics.iou(real, predicted))
            for h, r, p, iou in zip(chunk.heads, pack(real), pack(predicted), ious):
                out[h] = (r, p, float(iou))
        return out

    ious = np.full((len(heads), len(split)), np.nan)
    kept: dict[int, dict] = {}
    used = 0
    for s in tqdm(range(len(split)), desc="report: attention", unit="seq", file=sys.stderr, disable=not progress):
        got = run(s)
        for h, (_, _, iou) in got.items():
            ious[row[h], s] = iou
        size = sum(r.nbytes + p.nbytes for r, p, _ in got.values())
        if used + size <= budget:
            kept[s], used = got, used + size
    picks = {h: choose(ious[row[h]], k) for h in heads}
    again: dict[int, set] = {}
    for h, chosen in picks.items():
        for _, s in chosen:
            if s not in kept:
                again.setdefault(s, set()).add(h)
    for s, wanted in sorted(again.items()):  # examples that did not fit in the budget
        kept[s] = run(s, wanted)

    def example(h: Head, kind: Kind, s: int) -> Example:
        real, program, iou = kept[s][h]
        return Example(kind, s, iou, real, program)

    return {h: Evidence(ious[row[h]].copy(), tuple(example(h, kind, s) for kind, s in chosen))
            for h, chosen in picks.items()}


def token_labels(table) -> list[str]:
    """What a heatmap writes for each token: its text with line breaks and tabs shown,
    `␣` for white space only, `∅` for a token with no text (a special token)."""
    out = []
    for surface in table.surfaces:
        shown = surface.replace("\n", "⏎").replace("\t", "⇥").strip()
        out.append(shown or ("␣" if surface else "∅"))
    return out
