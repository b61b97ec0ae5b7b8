"""`report(...)`: a library to a report directory, from names to files.

Order: the quick refusals first (the output, the library, the level, the heads, the
corpus), then the model (only when attention is to be recomputed: `examples` > 0),
then the attention (`examples.collect`), then the pages or figures (`site`).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headcode.errors import UserError
from headcode.library import Level, Library
from headcode.loaders.corpora import SplitSpec
from headcode.report import examples as evidence_of
from headcode.report import site, text as texts, views


class Format(enum.Enum):
    HTML = "html"  # the site: an overview and a page per head
    PNG = "png"  # figures only: the overview's plots and one PNG per head


@dataclass(frozen=True)
class Settings:
    level: Level = Level.SHORT  # whose attention the examples draw, and what the grid colours by
    examples: int = 2  # sequences shown per head (0: recompute nothing, load no model)
    heads: tuple | None = None  # heads (headcode.heads.Head) whose attention is recomputed; None: all
    format: Format = Format.HTML
    # Another cut to take the test split of: SplitSpec fields (corpus, shape, max_len, one_per_line,
    # seed) that differ from the library's recorded cut. None: the library's own test split.
    cut: Mapping[str, object] | None = None
    max_seqs: int | None = None  # test sequences at most (None: as many as the library's cut asked for)
    model: str | None = None  # where to load the library's model from (None: its recorded name)
    force: bool = False  # recompute even if the model's fingerprint differs from the library's


@dataclass(frozen=True)
class Written:
    path: Path
    heads: int  # heads of the library, each with a page (html)
    with_examples: int  # heads whose attention was recomputed
    text: str | None  # which text, or None
    warnings: tuple[str, ...] = ()
    stages: dict = field(default_factory=dict)  # seconds per stage

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def report(library: str | Path | Library, out: str | Path, settings: Settings = Settings(),
           progress: bool = True) -> Written:
    """Write the report of `library` (a Library, or the path of one) into the directory `out`."""
    start = time.perf_counter()
    stages = {}

    def lap(name: str) -> None:
        stages[name] = round(time.perf_counter() - start - sum(stages.values()), 2)

    site.check_target(out)
    lib = library if isinstance(library, Library) else Library.load(library)
    if settings.level not in lib.levels:
        raise UserError(f"{_name(library)}: no head has a {settings.level.value} program (its levels: "
                        f"{', '.join(level.value for level in lib.levels)})")
    wanted = tuple(lib) if settings.heads is None else settings.heads
    missing = [str(h) for h in wanted if h not in lib or settings.level not in lib[h].levels]
    if missing:
        raise UserError(f"--heads: {_name(library)} has no {settings.level.value} program for "
                        f"{', '.join(missing[:10])}")
    lap("load library")
    evidence, text, warnings = {}, None, ()
    if settings.examples > 0:
        text, warnings, loaded = _text(lib, settings)
        lap("load model and text")
        programs = {h: lib.program_of(*h, settings.level) for h in wanted}
        evidence = evidence_of.collect(loaded.model, text.split, programs, settings.examples, progress=progress)
        lap("attention")
    head_views = views.head_views(lib, settings.level, evidence)
    ov = views.overview(lib, head_views, settings.level, text.about if text else None, settings.examples)
    lap("views")
    write = site.write_html if settings.format is Format.HTML else site.write_png
    path = write(ov, text.split if text else None, out)
    lap("write")
    return Written(path, len(head_views), len(evidence), ov.text, warnings, stages)


def _text(lib: Library, settings: Settings):
    """(texts.Text, identity warnings, the loaded model) for recomputing attention."""
    from headcode.library import identity_of
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model

    spec = None
    if settings.cut:
        base = SplitSpec.from_record(lib.split)
        spec = dataclasses.replace(base, **settings.cut, test=settings.max_seqs or base.test)
        texts.check_held_out(lib.split, spec)
    check_corpus(spec.corpus if spec else lib.split["corpus"])  # before the slow model load
    name = settings.model or lib.model.name
    loaded = load_model(name)
    warnings = tuple(lib.check_model(identity_of(name, loaded.model, loaded.tokenizer), force=settings.force))
    if spec is None:
        return texts.library_text(loaded, lib.split, settings.max_seqs), warnings, loaded
    return texts.corpus_text(loaded, lib.split, spec), warnings, loaded


def _name(library) -> str:
    return f"the {library.model.name} library" if isinstance(library, Library) else str(library)
