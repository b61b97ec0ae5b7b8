"""The explain pipeline: capture, propose, fit, select, score, and build a library.

Honest evaluation, stage by stage:
  1. capture   the model's attention on the train, validation and test splits;
  2. propose   search: every named pattern, the best single one per head and the
               greedy mixture of up to three (training split only); score form:
               softmax terms and word tables fitted per layer (training split
               only), then mixed with a named pattern where that helps on the
               training split; optionally LLM proposals from a summary of each head;
  3. select    each head's program among its candidates by validation IoU;
  4. score     the chosen program and the baselines (bos, uniform, best single
               named pattern, greedy mixture) on the test split, never seen before.
`Explanation.stages` records the seconds each stage took.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from headcode import dsl
from headcode.dsl import ir
from headcode.synth import scoreform
from headcode.synth.data import Split
from headcode.synth.evaluate import Head, mean_of, score_candidates
from headcode.synth.patterns import named_patterns
from headcode.synth.search import Sample, extend, search

BASELINES = ("bos", "uniform", "best_single", "greedy_mixture")
PROPOSERS = ("search", "openai", "both")


@dataclass(frozen=True)
class Settings:
    proposer: str = "search"
    heads: tuple[Head, ...] | None = None  # None: every head
    max_terms: int = 3
    fit: scoreform.FitSettings = scoreform.FitSettings()
    llm: object | None = None  # synth.llm.LLMConfig when the proposer uses it


@dataclass
class HeadResult:
    layer: int
    head: int
    program: ir.Pattern
    source: str  # which proposer's candidate won on validation
    validation: dict[str, float]
    test: dict[str, float]
    baselines: dict[str, float]  # test IoU of each baseline for this head
    baseline_programs: dict[str, ir.Pattern]


@dataclass
class Explanation:
    heads: list[HeadResult]
    stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mean(self, figure: str = "iou") -> float:
        return float(np.nanmean([h.test[figure] for h in self.heads]))

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
            progress: bool = True, stages: dict[str, float] | None = None) -> Explanation:
    """Explain heads from captured splits "train", "validation" and "test"."""
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    for split in (train, validation, test):
        if not len(split):
            raise ValueError(f"the {split.name} split has no sequences")
    wanted = list(settings.heads) if settings.heads else [(l, h) for l in range(layers) for h in range(heads_per_layer)]
    stages = {} if stages is None else stages
    clock = _Clock(stages)
    notes: list[str] = []

    sample = Sample(train, named_patterns())
    found = search(sample, sorted({l for l, _ in wanted}), heads_per_layer, settings.max_terms, progress=progress)
    clock.lap("search")

    candidates: dict[Head, list[tuple[str, ir.Pattern]]] = {
        (l, h): [("best_single", found.single[l * heads_per_layer + h]),
                 ("greedy_mixture", found.mixture[l * heads_per_layer + h])]
        for l, h in wanted
    }
    fitted = _score_form(train, wanted, heads_per_layer, settings.fit, progress)
    for head, program in fitted.items():
        candidates[head].append(("score", program))
    clock.lap("score_form")
    # What a softmax cannot say (the latest comma, the sentence start...) mixed in.
    for head, program in extend(sample, fitted, heads_per_layer, progress=progress).items():
        if program != fitted[head]:
            candidates[head].append(("score+pattern", program))
    clock.lap("extend")

    if settings.proposer in ("openai", "both"):
        from headcode.synth.proposals import llm_candidates

        for head, programs in llm_candidates(train, wanted, settings.llm, notes, progress).items():
            candidates[head].extend(("llm", p) for p in programs)
        clock.lap("llm")
    if settings.proposer == "openai":  # the LLM alone (search results stay as baselines)
        for head in wanted:
            llm = [c for c in candidates[head] if c[0] == "llm"]
            candidates[head] = llm or candidates[head]

    # Only what the language accepts back: a library stores programs as text and
    # re-checks them on load (size limits included).
    for head in wanted:
        kept = [(source, p) for source, p in candidates[head] if _round_trips(p)]
        if len(kept) < len(candidates[head]):
            notes.append(f"L{head[0]}.H{head[1]}: dropped {len(candidates[head]) - len(kept)} candidate(s) "
                         "beyond the language's limits")
        candidates[head] = kept
    chosen_scores = score_candidates(validation, {h: [p for _, p in c] for h, c in candidates.items()},
                                     progress, "select on validation")
    chosen: dict[Head, tuple[str, ir.Pattern, dict]] = {}
    for head, options in candidates.items():
        values = [chosen_scores[c][head]["iou"] for c in range(len(options))]
        best = int(np.nanargmax(values)) if not np.all(np.isnan(values)) else 0
        chosen[head] = (options[best][0], options[best][1], chosen_scores[best][head])
    clock.lap("select")

    bos, uniform = dsl.parse("bos"), dsl.parse("uniform")
    final = {h: [chosen[h][1], bos, uniform, found.single[h[0] * heads_per_layer + h[1]],
                 found.mixture[h[0] * heads_per_layer + h[1]]] for h in wanted}
    tested = score_candidates(test, final, progress, "score on test")
    clock.lap("test")

    results = []
    for head in wanted:
        source, program, val = chosen[head]
        results.append(HeadResult(
            layer=head[0], head=head[1], program=program, source=source, validation=val, test=tested[0][head],
            baselines={name: tested[k + 1][head]["iou"] for k, name in enumerate(BASELINES)},
            baseline_programs={"best_single": final[head][3], "greedy_mixture": final[head][4]},
        ))
    return Explanation(results, stages, notes)


def _round_trips(program: ir.Pattern) -> bool:
    try:
        return dsl.canonical(dsl.parse(dsl.show(program))) == program
    except dsl.DslError:
        return False


def _score_form(train: Split, wanted: Sequence[Head], heads_per_layer: int, fit: scoreform.FitSettings,
                progress: bool) -> dict[Head, ir.Pattern]:
    from tqdm import tqdm

    vocab = scoreform.vocabulary(train.tables)
    feats = [scoreform.features(t, vocab) for t in train.tables]
    prepared = scoreform.batches(feats, len(vocab), fit.batch)
    out: dict[Head, ir.Pattern] = {}
    layers = sorted({l for l, _ in wanted})
    heads = set(wanted)
    for layer in tqdm(layers, desc="fit score form", unit="layer", file=sys.stderr, disable=not progress):
        params = scoreform.fit_layer(prepared, lambda k: train.attention[k], layer, heads_per_layer, len(vocab), fit)
        for h, p in enumerate(params):
            if (layer, h) in heads:
                out[layer, h] = scoreform.to_program(p, vocab)
    return out
