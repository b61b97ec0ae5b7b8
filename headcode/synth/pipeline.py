"""The whole explain job from names to a library: load the model, cut the corpus into
split sequences, record their attention, explain (synth.explain), and build the library.

Shared by `headcode explain`, `make demo` and `benchmarks/explain.py`, so the three
always run the same job. `recorded_splits` cuts a library's splits again, as `run`
cut them (`headcode library edit` rescores a program on them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from headcode.errors import UserError
from headcode.executor import LOCAL
from headcode.heads import parse_heads
from headcode.loaders.corpora import SplitSpec
from headcode.synth import data, explain, publish


@dataclass(frozen=True)
class Job:
    model: str
    split: SplitSpec = field(default_factory=SplitSpec)
    heads_spec: str | None = None  # "L0.H1,L3.H2" or None for every head
    settings: explain.Settings = explain.Settings()


def run(job: Job, progress: bool = True, executor=LOCAL):
    """(Explanation, Library) for `job`; `Explanation.stages` has the time of each stage.
    Capture and the heavy fits run on `executor` (`headcode.executor`); the library is
    the same bytes wherever they run."""
    from headcode.library import identity_of
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model

    check_corpus(job.split.corpus)  # a missing file is refused before the slow model load
    created = publish.now()  # so is a bad $SOURCE_DATE_EPOCH
    stages: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_model(job.model)
    heads = None if job.heads_spec is None else parse_heads(job.heads_spec, loaded.n_layers, loaded.n_heads)
    splits = data.cut(loaded, job.split)
    for name, split in splits.items():
        if not len(split):
            raise UserError(f"{job.split.corpus}: no {name} sequences; the corpus is too small to split "
                            "(each split needs a few stories or paragraphs)")
    stages["load"] = round(time.perf_counter() - start, 2)
    # Only the layers up to the last head asked for run: a head's attention depends only
    # on the layers before it, so `explain --heads L0.H6,L3.H6` costs 4 layers, not all.
    layers = None if heads is None else max(h.layer for h in heads) + 1
    data.record_all(loaded, list(splits.values()), progress=progress, layers=layers, executor=executor)
    stages["capture"] = round(time.perf_counter() - start - stages["load"], 2)
    settings = explain.Settings(**{**job.settings.__dict__, "heads": heads})
    result = explain.explain(splits, loaded.n_layers, loaded.n_heads, settings, progress=progress, stages=stages,
                             executor=executor)
    record = job.split.record({name: len(s) for name, s in splits.items()},
                              {name: s.tokens for name, s in splits.items()})
    library = publish.to_library(result, identity_of(job.model, loaded.model, loaded.tokenizer), record, created)
    stages["total"] = round(time.perf_counter() - start, 2)
    return result, library


def recorded_splits(loaded, record, names=("validation", "test")) -> dict[str, data.Split]:
    """The splits `names` of the cut a library recorded (`SplitSpec.record`), cut again
    exactly as `run` cut them (not captured). Refused (one-line UserError) when the cut
    no longer gives the sequences and tokens recorded: the corpus or the tokenizer
    changed, so figures measured now would not be comparable with the library's."""
    spec = SplitSpec.from_record(record)
    splits = data.cut(loaded, spec, names=names)
    for name, split in splits.items():
        want, got = (record["sequences"][name], record["tokens"][name]), (len(split), split.tokens)
        if want != got:
            raise UserError(f"{spec.corpus}: its {name} split no longer gives what the library recorded "
                            f"({want[0]} sequences of {want[1]} tokens; now {got[0]} of {got[1]}); the corpus or "
                            "the tokenizer changed")
    return splits
