"""An explanation as a library (headcode.library): programs, scores and provenance."""

from __future__ import annotations

from datetime import datetime, timezone

from headcode import dsl
from headcode.library import HeadEntry, Library, ModelIdentity
from headcode.synth.explain import Explanation

LIBRARY_VERSION = "0.1.0"


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in scores.items() if v == v}  # drop NaN


def to_library(explanation: Explanation, model: ModelIdentity, corpus: dict, created: str | None = None,
               version: str = LIBRARY_VERSION) -> Library:
    """Every explained head with its program, validation and test scores; the test
    IoU of each baseline is kept in `weights` under `baseline_*` for reports."""
    created = created or datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    heads, programs = [], []
    for h in explanation.heads:
        programs.append(h.program)
        heads.append(HeadEntry(
            layer=h.layer, head=h.head, program=dsl.program_id(h.program),
            validation=_rounded(h.validation), test=_rounded(h.test),
            weights=_rounded({f"baseline_{k}": v for k, v in h.baselines.items()}),
            notes=f"source: {h.source}",
        ))
    return Library(model=model, corpus=corpus, created=created, version=version, heads=heads, programs=programs)
