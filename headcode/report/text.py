"""Which text a report shows attention on: held-out text only, and it says which.

By default the library's own test split, cut again from its `split` record exactly as
`explain` cut it (`synth.pipeline.recorded_splits`, refused if the cut no longer
gives what was recorded). With another cut (`--corpus`, `--max-len`, ...) it is the
test split of that cut; a cut of the library's own corpus that could put a training
story in that test split is refused (another seed, or, for a corpus without story
marks, sequences of another length or shape: their text is assigned to splits one
sequence at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from headcode.errors import UserError
from headcode.loaders.corpora import SplitSpec, open_corpus
from headcode.synth import data, pipeline


@dataclass(frozen=True)
class Text:
    split: data.Split  # the sequences (token tables and texts), not captured
    about: str  # what a reader is told: which split of which corpus, cut how
    own: bool  # the library's own test split (the one its recorded test figures were measured on)


def _made(spec: SplitSpec, split: data.Split, own: bool) -> Text:
    cut = "one sequence a line" if spec.one_per_line else f"{spec.shape}, at most {spec.max_len} tokens"
    whose = "the library's own test split" if own else "the test split"
    which = f"{whose} of {spec.corpus} ({cut}, split seed {spec.seed})"
    if not len(split):
        raise UserError(f"{which}: no test sequences of at least 2 tokens to show")
    return Text(split, f"{which}: {len(split)} sequences, {split.tokens} tokens, never used for fitting", own)


def library_text(loaded, record, max_seqs: int | None = None) -> Text:
    """The test split a library recorded (`record`: its `split`), its first `max_seqs` sequences."""
    split = pipeline.recorded_splits(loaded, record, names=("test",))["test"]
    if max_seqs is not None:
        del split.tables[max_seqs:], split.texts[max_seqs:]
    return _made(SplitSpec.from_record(record), split, own=True)


def corpus_text(loaded, record, spec: SplitSpec) -> Text:
    """The test split of another cut `spec` (at most `spec.test` sequences); `record` is
    the library's. The caller has refused a cut that could hold training text
    (`check_held_out`, before it loaded the model)."""
    split = data.cut(loaded, spec, names=("test",))["test"]
    own = all(getattr(spec, k) == record[k] for k in ("corpus", "shape", "max_len", "one_per_line", "seed"))
    return _made(spec, split, own)


def check_held_out(record, spec: SplitSpec) -> None:
    """Refuse a cut of the library's own corpus whose test split could hold text the
    library was fitted on (one-line UserError)."""
    if spec.corpus != record["corpus"]:
        return
    why = None
    if spec.seed != record["seed"]:
        why = f"split seed {spec.seed} (the library's is {record['seed']})"
    elif spec.one_per_line != record["one_per_line"]:
        why = "--one-per-line" if spec.one_per_line else "sequences that are not one a line"
    elif (spec.shape, spec.max_len) != (record["shape"], record["max_len"]) and (
            record["one_per_line"] or not open_corpus(spec.corpus).has_stories()):
        why = (f"{spec.shape} sequences of {spec.max_len} tokens (a corpus without story marks is split sequence "
               "by sequence)")
    if why:
        raise UserError(f"{spec.corpus}: the library was fitted on this corpus, and cutting it with {why} could put "
                        "its training text in the test split; keep the library's cut, or give other text")

