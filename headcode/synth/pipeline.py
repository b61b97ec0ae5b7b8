"""The whole explain job from names to a library: load the model, cut the corpus into
split sequences, capture, explain (synth.explain), and build the library.

Shared by `headcode explain`, `make demo` and `benchmarks/explain.py`, so the three
always run the same job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from headcode.errors import UserError
from headcode.synth import data, explain, publish


@dataclass(frozen=True)
class Job:
    model: str
    corpus: str
    max_len: int = 128
    shape: str = "packed"
    one_per_line: bool = False
    seed: int = 0
    train: int = 200
    validation: int = 40
    test: int = 40
    heads_spec: str | None = None  # "L0.H1,L3.H2" or None for every head
    settings: explain.Settings = explain.Settings()


def run(job: Job, progress: bool = True):
    """(Explanation, Library) for `job`; `Explanation.stages` has the time of each stage."""
    from headcode.library import identity_of
    from headcode.loaders.corpora import open_corpus
    from headcode.loaders.models import load_model

    stages: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_model(job.model)
    heads = parse_heads(job.heads_spec, loaded.n_layers, loaded.n_heads)
    corpus = open_corpus(job.corpus)
    splits = cut(loaded, corpus, {"train": job.train, "validation": job.validation, "test": job.test},
                 max_len=job.max_len, shape=job.shape, one_per_line=job.one_per_line, seed=job.seed)
    for name, split in splits.items():
        if not len(split):
            raise UserError(f"{corpus.name}: no {name} sequences; the corpus is too small to split "
                            "(each split needs a few stories or paragraphs)")
    stages["load"] = round(time.perf_counter() - start, 2)
    for split in splits.values():
        data.capture(loaded, split, progress=progress)
    stages["capture"] = round(time.perf_counter() - start - stages["load"], 2)
    settings = explain.Settings(**{**job.settings.__dict__, "heads": heads})
    result = explain.explain(splits, loaded.n_layers, loaded.n_heads, settings, progress=progress, stages=stages)
    meta = {"name": corpus.name, "split_seed": job.seed, "max_len": job.max_len, "shape": job.shape,
            "one_per_line": job.one_per_line,
            "sequences": {name: len(s) for name, s in splits.items()},
            "tokens": {name: s.tokens for name, s in splits.items()}}
    library = publish.to_library(result, identity_of(job.model, loaded.model, loaded.tokenizer), meta)
    stages["total"] = round(time.perf_counter() - start, 2)
    return result, library


def cut(loaded, corpus, counts: dict[str, int], *, max_len: int, shape: str, one_per_line: bool,
        seed: int) -> dict[str, data.Split]:
    """The corpus cut into the named splits, at most `counts[name]` sequences each: the
    same cut as a library's recorded `corpus` fields give back (`Library.corpus`)."""
    from headcode.loaders.corpora import sequences

    stream = sequences(corpus, loaded.tokenizer, max_len, add_special_tokens=loaded.add_special_tokens,
                       one_per_line=one_per_line, seed=seed, shape=shape, splits=list(counts))
    return data.gather(stream, counts)


def parse_heads(text: str | None, layers: int, heads: int) -> tuple[tuple[int, int], ...] | None:
    """`L0.H1,L3.H2` as sorted (layer, head) pairs; None for every head."""
    import re

    if not text:
        return None
    out = []
    for part in text.split(","):
        match = re.fullmatch(r"L(\d+)\.H(\d+)", part.strip())
        if not match:
            raise UserError(f"--heads: {part.strip()!r} is not a head like L3.H7")
        layer, head = int(match[1]), int(match[2])
        if layer >= layers or head >= heads:
            raise UserError(f"--heads: {part.strip()} is outside the model ({layers} layers x {heads} heads)")
        out.append((layer, head))
    return tuple(sorted(set(out)))
