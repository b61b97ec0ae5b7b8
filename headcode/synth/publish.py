"""An explanation as a library (headcode.library): programs, scores and provenance."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone

from headcode.errors import UserError

from headcode.library import HeadEntry, LevelEntry, Library, ModelIdentity
from headcode.metrics import Scores
from headcode.synth.explain import Explanation

LIBRARY_VERSION = "0.2.0"


def rounded(scores: Scores | Mapping[str, float]) -> dict[str, float]:
    """Figures as a library records them: 4 decimals, NaN left out."""
    values = scores.as_dict() if isinstance(scores, Scores) else scores
    return {k: round(float(v), 4) for k, v in values.items() if v == v}  # drop NaN


def now() -> str:
    """The current time as a library's `created`: UTC, whole seconds, `Z`; or the time
    $SOURCE_DATE_EPOCH says (seconds since 1970, the reproducible-builds convention),
    so that the same job writes the same bytes twice, in process or on Ray."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        if not epoch.isdigit():
            raise UserError(f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, not {epoch[:40]!r}")
        moment = datetime.fromtimestamp(int(epoch), timezone.utc)
    else:
        moment = datetime.now(timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def to_library(explanation: Explanation, model: ModelIdentity, split: Mapping, created: str | None = None,
               version: str = LIBRARY_VERSION) -> Library:
    """Every explained head with its program at each level, their validation and
    test scores, and the test IoU of each baseline; `split` is the record of the corpus cut
    (`SplitSpec.record`)."""
    created = created or now()
    heads, programs = [], []
    for h in explanation.heads:
        levels = {}
        for level, e in h.levels.items():
            programs.append(e.program)
            levels[level] = LevelEntry(e.program.id, e.source.value, rounded(e.validation), rounded(e.test))
        heads.append(HeadEntry(h.head.layer, h.head.head, levels, rounded(h.baselines)))
    return Library(model=model, split=split, created=created, version=version, heads=heads, programs=programs)
