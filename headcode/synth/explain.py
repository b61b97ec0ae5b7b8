"""The explain pipeline: propose, fit, select and score programs for captured heads,
at two levels of detail (`headcode.library.Level`).

Honest evaluation, stage by stage (the splits are captured before; `pipeline` does it):
  1. propose  search: every named pattern, the best single one per head and the
              greedy mixture of up to three; score form: softmax terms and word
              tables fitted per layer, then mixed with a named pattern where that
              helps; short: small softmaxes grown atom by atom for groups of
              similar heads (`short`); optionally LLM proposals. Training split only.
  2. select   the full level: each head's candidate with the best validation IoU;
              the short level: a description-length rule over the whole library
              on validation IoU (`shapes`), the chosen short programs refitted on
              the whole training split, and short programs that behave alike on
              validation text merged into the shorter.
  3. score    both levels and the baselines (bos, uniform, best single named
              pattern, greedy mixture) on the test split, never seen before.
`Explanation.stages` records the seconds each stage took.

The loops that dominate the time (the score-form fit per layer, the short search per
group of heads, its refit per shape, scoring) run on an executor (`headcode.executor`,
`synth.tasks`): in this process by default, a task per core at a time, or as Ray
tasks; the pattern search and the extension stay here (a few percent of the time).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from headcode.dsl import DslError, Program
from headcode.dsl.shape import shape_id
from headcode.executor import LOCAL
from headcode.heads import Head, as_head
from headcode.library import Level
from headcode.library.dedup import coinciding
from headcode.metrics import Scores
from headcode.synth import scoreform, shapes, short, tasks
from headcode.synth.data import Split
from headcode.synth.patterns import named_patterns
from headcode.synth.search import Sample, extend, search

# Short programs whose matrices differ by at most this much (absolute, at every
# entry of every validation sequence) are one program: the shorter is kept.
SAME_BEHAVIOUR = 0.02


class Source(enum.Enum):
    """Which proposer a candidate program came from."""

    NAMED = "named"  # a named pattern (`bos`, `uniform`)
    BEST_SINGLE = "best_single"  # the named pattern with the best training IoU
    GREEDY_MIXTURE = "greedy_mixture"  # up to three named patterns, added greedily
    SCORE = "score"  # the fitted score form
    SCORE_PATTERN = "score+pattern"  # the score form mixed with a named pattern
    SHORT = "short"  # a small softmax grown atom by atom (`short`)
    LLM = "llm"  # an LLM's proposal, read as DSL text
    EDIT = "edit"  # written by hand and put in a library with `headcode library edit` (never by explain)


class Proposer(enum.Enum):
    """Which proposers `explain` asks (the LLM alone still gets the search baselines)."""

    SEARCH = "search"
    OPENAI = "openai"
    BOTH = "both"


# The programs every head is compared with, on the same test split.
BASELINES = ("bos", "uniform", "best_single", "greedy_mixture")


@dataclass(frozen=True)
class Candidate:
    source: Source
    program: Program


@dataclass(frozen=True)
class Settings:
    proposer: Proposer = Proposer.SEARCH
    heads: tuple[Head, ...] | None = None  # None: every head
    max_terms: int = 3
    fit: scoreform.FitSettings = scoreform.FitSettings()
    short: short.ShortSettings = short.ShortSettings()
    llm: object | None = None  # synth.llm.LLMConfig when the proposer uses it


@dataclass(frozen=True)
class Explained:
    """One level's explanation of a head, with its figures."""

    program: Program
    source: Source
    validation: Scores
    test: Scores


@dataclass(frozen=True)
class HeadResult:
    head: Head
    levels: dict[Level, Explained]
    baselines: dict[str, float]  # test IoU of each of BASELINES for this head
    baseline_programs: dict[str, Program]


@dataclass
class Explanation:
    heads: list[HeadResult]
    stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mean(self, figure: str = "iou", level: Level = Level.FULL) -> float:
        return float(np.nanmean([getattr(h.levels[level].test, figure) for h in self.heads]))

    def baseline_means(self) -> dict[str, float]:
        return {b: float(np.nanmean([h.baselines[b] for h in self.heads])) for b in BASELINES}


class _Clock:
    def __init__(self, stages: dict[str, float]):
        self.stages, self.start = stages, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + round(now - self.start, 2)
        self.start = now


def explain(splits: dict[str, Split], layers: int, heads_per_layer: int, settings: Settings = Settings(),
            progress: bool = True, stages: dict[str, float] | None = None, executor=LOCAL) -> Explanation:
    """Explain heads from captured splits "train", "validation" and "test"; the
    heavy loops run on `executor` (`headcode.executor`)."""
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    for split in (train, validation, test):
        if not len(split):
            raise ValueError(f"the {split.name} split has no sequences")
    wanted = [as_head(h) for h in settings.heads] if settings.heads else \
        [Head(l, h) for l in range(layers) for h in range(heads_per_layer)]
    clock = _Clock({} if stages is None else stages)
    notes: list[str] = []

    sample = Sample(train, named_patterns())
    found = search(sample, sorted({h.layer for h in wanted}), heads_per_layer, settings.max_terms, progress=progress)
    clock.lap("search")
    single = {h: found.single[h.layer * heads_per_layer + h.head] for h in wanted}
    mixture = {h: found.mixture[h.layer * heads_per_layer + h.head] for h in wanted}
    full = {h: [Candidate(Source.BEST_SINGLE, single[h]), Candidate(Source.GREEDY_MIXTURE, mixture[h])]
            for h in wanted}

    vocab = scoreform.vocabulary(train.tables)
    # Every training sequence's term values, computed once for both fits (score form, short).
    feats = [scoreform.features(t, vocab) for t in train.tables]
    fitted = _score_form(train, feats, vocab, wanted, heads_per_layer, settings.fit, notes, progress, executor)
    for head, program in fitted.items():
        full[head].append(Candidate(Source.SCORE, program))
    clock.lap("score_form")
    # What a softmax cannot say (the latest comma, the sentence start...) mixed in.
    for head, program in extend(sample, fitted, heads_per_layer, progress=progress).items():
        if program != fitted[head]:
            full[head].append(Candidate(Source.SCORE_PATTERN, program))
    clock.lap("extend")

    if settings.proposer is not Proposer.SEARCH:
        from headcode.synth.proposals import llm_candidates

        for head, programs in llm_candidates(train, wanted, settings.llm, notes, progress).items():
            full[head].extend(Candidate(Source.LLM, p) for p in programs)
        clock.lap("llm")
    if settings.proposer is Proposer.OPENAI:  # the LLM alone (search results stay as baselines)
        for head in wanted:
            full[head] = [c for c in full[head] if c.source is Source.LLM] or full[head]

    fixed = {h: [Candidate(Source.NAMED, Program.of("bos")), Candidate(Source.NAMED, Program.of("uniform")),
                 Candidate(Source.BEST_SINGLE, single[h]), Candidate(Source.GREEDY_MIXTURE, mixture[h]),
                 *(c for c in full[h] if c.source is Source.LLM)] for h in wanted}
    on = executor.put(validation)  # scored four times: put into Ray's object store once
    short_level = _short(train, feats, validation, on, vocab, wanted, heads_per_layer, settings.short, fixed, progress,
                         clock, notes, executor)
    full_scores = tasks.scored(executor, on, {h: {c: c.program for c in full[h]} for h in wanted},
                               progress, "select on validation", jsd=False)
    chosen = {Level.FULL: {h: _best(full_scores[h]) for h in wanted}, Level.SHORT: short_level}
    # Every figure of the chosen programs (selection read IoU alone).
    on_validation = tasks.scored(executor, on, {h: {level: chosen[level][h].program for level in Level}
                                                for h in wanted})
    clock.lap("select")

    baselines = {h: {"bos": Program.of("bos"), "uniform": Program.of("uniform"), "best_single": single[h],
                     "greedy_mixture": mixture[h]} for h in wanted}
    on_test = tasks.scored(executor, test, {h: {**{level: chosen[level][h].program for level in Level},
                                                **baselines[h]} for h in wanted}, progress, "score on test")
    clock.lap("test")

    results = []
    for h in wanted:
        levels = {level: Explained(chosen[level][h].program, chosen[level][h].source, on_validation[h][level],
                                   on_test[h][level]) for level in Level}
        results.append(HeadResult(h, levels, {name: on_test[h][name].iou for name in BASELINES}, baselines[h]))
    return Explanation(results, clock.stages, notes)


def _best(scored: dict[Candidate, Scores]) -> Candidate:
    """The candidate with the best validation IoU (the first of equals; NaN never wins)."""
    return max(scored, key=lambda c: -math.inf if math.isnan(scored[c].iou) else scored[c].iou)


def _score_form(train: Split, feats: Sequence[scoreform.Features], vocab: Sequence[str], wanted: Sequence[Head],
                heads_per_layer: int, fit: scoreform.FitSettings, notes: list[str],
                progress: bool, executor) -> dict[Head, Program]:
    prepared = scoreform.batches(feats, len(vocab), fit.batch)
    out: dict[Head, Program] = {}
    heads = set(wanted)
    layers = sorted({h.layer for h in wanted})
    fitted = executor.map(tasks.fit_layer, tasks.layer_items(train, layers), prepared, heads_per_layer, len(vocab),
                          fit, desc="fit score form", progress=progress)
    for layer, params in zip(layers, fitted):
        for h, p in enumerate(params):
            if Head(layer, h) in heads:
                try:
                    out[Head(layer, h)] = scoreform.to_program(p, vocab)
                except DslError as err:  # a fit beyond the language's limits: the other candidates remain
                    notes.append(f"L{layer}.H{h}: the fitted score form is not a valid program ({err})")
    return out


def _short(train: Split, feats: Sequence[scoreform.Features], validation: Split, on, vocab: Sequence[str],
           wanted: Sequence[Head], heads_per_layer: int, settings: short.ShortSettings,
           fixed: dict[Head, list[Candidate]], progress: bool, clock: _Clock, notes: list[str],
           executor) -> dict[Head, Candidate]:
    """Each head's short program (see the module docstring, step 2): among `fixed`
    (named patterns, the search's, the LLM's) and the grown softmaxes. `on` is the
    validation split as `executor.put` shares it."""
    def rows_of(count: int) -> short.Rows:
        return short.Rows.of(scoreform.batches(feats[:count], len(vocab), settings.batch),
                             lambda k: train.attention[k], wanted, heads_per_layer)

    rows = rows_of(settings.sequences)
    # Largest groups first, so that the workers finish together (each group's result
    # is its own, so the order changes no number).
    groups = sorted(short.groups(rows, wanted, settings), key=len, reverse=True)
    steps: dict[Head, list[short.Step]] = {}
    for grown in executor.map(tasks.grow, [(members, rows.targets_of(members)) for members in groups],
                              rows.without_targets(), vocab, settings, desc="grow short programs",
                              progress=progress):
        steps.update(grown)
    clock.lap("short")

    candidates = {}
    for h in wanted:
        options = [*fixed[h], *(Candidate(Source.SHORT, s.program) for s in steps.get(h, []))]
        candidates[h] = {c: c.program for c in dict.fromkeys(options)}
    scored = tasks.scored(executor, on, candidates, progress, "short: validation", jsd=False)
    picked = shapes.choose(candidates, scored)
    chosen = {h: picked[h] for h in wanted}

    # Refit each chosen short softmax on the whole training split, from the weights
    # its path ended with (its atoms had few steps each), heads of one list of atoms
    # together; a refit that changes the shape or scores worse on validation is not taken.
    step_of = {h: next(s for s in steps[h] if s.program == chosen[h].program)
               for h in wanted if chosen[h].source is Source.SHORT}
    if step_of:
        full_rows = rows_of(len(train))
        polished = {}
        items = []
        for atoms in dict.fromkeys(s.atoms for s in step_of.values()):
            members = [h for h, s in step_of.items() if s.atoms == atoms]
            items.append((members, atoms, [step_of[h].weights for h in members], full_rows.targets_of(members)))
        items.sort(key=lambda item: len(item[0]), reverse=True)  # largest first, as above
        for filled in executor.map(tasks.polish, items, full_rows.without_targets(), vocab, settings):
            polished.update(filled)
        again = tasks.scored(executor, on, {h: {0: chosen[h].program, 1: p} for h, p in polished.items()},
                             jsd=False)
        for h, p in polished.items():
            if shape_id(p) == shape_id(chosen[h].program) and again[h][1].iou >= again[h][0].iou:
                chosen[h] = Candidate(Source.SHORT, p)
    merged = coinciding([c.program for c in chosen.values()], validation.tables, atol=SAME_BEHAVIOUR)
    if merged:
        notes.append(f"short level: {len(merged)} program(s) merged into a shorter one that behaves the same on "
                     f"validation text (within {SAME_BEHAVIOUR})")
        chosen = {h: Candidate(c.source, merged.get(c.program, c.program)) for h, c in chosen.items()}
    clock.lap("short_select")
    return chosen
