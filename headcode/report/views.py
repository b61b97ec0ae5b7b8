"""What the pages say, as plain values: one `HeadView` per head of the library and an
`Overview` of the whole, built from the library (its recorded figures) and, where
the report recomputed attention, each head's `examples.Evidence`.

Nothing here draws or writes; `site` renders these values with the templates.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from headcode.dsl import Program
from headcode.dsl.describe import Family
from headcode.dsl.shape import shape_text
from headcode.heads import Head
from headcode.library import BASELINES, HeadEntry, Level, LevelEntry, Library
from headcode.library.format import reading
from headcode.report.examples import Evidence
from headcode.report.families import COLOURS, shade, slug


def page_of(head: Head) -> str:
    """A head page's file name inside the report's `heads/` directory."""
    return f"{head}.html"


@dataclass(frozen=True)
class LevelView:
    level: Level
    program: Program
    entry: LevelEntry
    family: Family
    description: str
    shape: str  # the shape's id
    shape_text: str  # the program with its fitted numbers written `?`: the sketch it instantiates
    same_program: tuple[Head, ...] = ()  # the other heads explained by this program at this level
    same_shape: tuple[Head, ...] = ()  # the other heads whose program at this level has this shape

    @property
    def colour(self) -> str:
        return COLOURS[self.family]


@dataclass(frozen=True)
class HeadView:
    head: Head
    entry: HeadEntry
    levels: tuple[LevelView, ...]  # Level's order: short first
    shown: Level  # the level whose program's attention the examples draw (and the grid colours by)
    evidence: Evidence | None = None  # None: no attention recomputed for this head
    previous: Head | None = None
    next: Head | None = None

    @property
    def name(self) -> str:
        return str(self.head)

    @property
    def page(self) -> str:
        return page_of(self.head)

    def at(self, level: Level) -> LevelView | None:
        return next((v for v in self.levels if v.level is level), None)

    @property
    def main(self) -> LevelView:
        """The level the grid shows: `shown` if the head has it, else its first."""
        return self.at(self.shown) or self.levels[0]

    @property
    def test_iou(self) -> float | None:
        return self.main.entry.test.get("iou")

    @property
    def cell(self) -> str:
        """The grid cell's colour: the family's hue, paler as the test IoU falls."""
        return shade(self.main.colour, self.test_iou)


@dataclass(frozen=True)
class LevelSummary:
    level: Level
    heads: int
    distinct_programs: int
    distinct_shapes: int
    median_chars: float
    median_size: float
    largest_chars: int
    mean_test_iou: float | None
    families: tuple[tuple[Family, int], ...]  # in the legend's order, those present
    shared_programs: tuple[tuple[Program, tuple[Head, ...]], ...]  # programs of 2+ heads, most heads first


@dataclass(frozen=True)
class Overview:
    library: Library
    views: tuple[HeadView, ...]
    levels: tuple[LevelSummary, ...]
    baselines: Mapping[str, float]  # mean test IoU over the heads that record each baseline
    shown: Level
    text: str | None  # which text the attention was recomputed on; None: none was
    mean_recomputed: float | None  # mean over heads with evidence of their IoU on that text
    examples: int  # examples per head asked for
    content_hash: str  # the library's (computed once: it encodes the whole library)
    families: tuple[tuple[Family, int], ...] = field(default=())  # at the shown level, legend order

    @property
    def grid(self) -> list[list[HeadView | None]]:
        """Rows are layers, columns heads; None where the library explains no head."""
        model = self.library.model
        cells: list[list[HeadView | None]] = [[None] * model.num_heads for _ in range(model.num_layers)]
        for v in self.views:
            cells[v.head.layer][v.head.head] = v
        return cells


def _read(program: Program) -> tuple[Family, str, str, str]:
    r = reading(program)
    return Family(r["family"]), r["description"], r["shape"], shape_text(program)


def head_views(lib: Library, shown: Level, evidence: Mapping[Head, Evidence]) -> tuple[HeadView, ...]:
    """A view of every head of `lib`, in (layer, head) order, linked to its neighbours."""
    by_program: dict[tuple[Level, str], list[Head]] = defaultdict(list)
    by_shape: dict[tuple[Level, str], list[Head]] = defaultdict(list)
    read, of_program = {}, {}  # of_program: each program read once, however many heads share it
    for key, entry in lib.items():
        for level, e in entry.levels.items():
            program = lib.programs[e.program]
            if program not in of_program:
                of_program[program] = _read(program)
            read[key, level] = (program, *of_program[program])
            by_program[level, program.id].append(key)
            by_shape[level, read[key, level][3]].append(key)
    keys = list(lib)
    views = []
    for k, key in enumerate(keys):
        levels = []
        for level, e in lib[key].levels.items():
            program, family, description, shape, text = read[key, level]
            others = tuple(h for h in by_program[level, program.id] if h != key)
            alike = tuple(h for h in by_shape[level, shape] if h != key and h not in others)
            levels.append(LevelView(level, program, e, family, description, shape, text, others, alike))
        views.append(HeadView(Head(*key), lib[key], tuple(levels), shown, evidence.get(key),
                              Head(*keys[k - 1]) if k else None, Head(*keys[k + 1]) if k + 1 < len(keys) else None))
    return tuple(views)


def _families(views) -> tuple[tuple[Family, int], ...]:
    counts = Counter(v.family for v in views)
    return tuple((f, counts[f]) for f in COLOURS if counts[f])


def overview(lib: Library, views: tuple[HeadView, ...], shown: Level, text: str | None, examples: int) -> Overview:
    summaries = []
    for level in lib.levels:
        at = [v.at(level) for v in views if v.at(level) is not None]
        chars = [lv.program.chars for lv in at]
        tested = [lv.entry.test["iou"] for lv in at if "iou" in lv.entry.test]
        groups: dict[Program, list[Head]] = defaultdict(list)
        for v in views:
            if v.at(level) is not None:
                groups[v.at(level).program].append(v.head)
        shared = tuple((p, tuple(heads)) for p, heads in sorted(groups.items(), key=lambda g: -len(g[1]))
                       if len(heads) > 1)
        summaries.append(LevelSummary(
            level, len(at), len(groups), len({lv.shape for lv in at}), statistics.median(chars),
            statistics.median(lv.program.size for lv in at), max(chars), statistics.fmean(tested) if tested else None,
            _families(at), shared))
    baselines = {}
    for name in BASELINES:
        values = [v.entry.baselines[name] for v in views if name in v.entry.baselines]
        if values:
            baselines[name] = statistics.fmean(values)
    recomputed = [v.evidence.mean_iou for v in views if v.evidence is not None]
    return Overview(lib, views, tuple(summaries), baselines, shown, text,
                    statistics.fmean(recomputed) if recomputed else None, examples, lib.content_hash,
                    _families([v.main for v in views]))


__all__ = ["HeadView", "LevelSummary", "LevelView", "Overview", "head_views", "overview", "page_of", "slug"]
