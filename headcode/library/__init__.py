"""The program library: canonical programs and the heads of one model they explain,
as a versioned, content-hashed directory (docs/library-format.md).

    from headcode.library import Level, Library, bundled
    lib = Library.load("my.lib")          # every check; executes nothing
    lib[3, 7][Level.SHORT].test, lib.program_of(3, 7, Level.SHORT)
    lib.diff(other), lib.merge(other), dedup(lib, tables)

Modules, one concern each: `identity` (which model), `entries` (what a library
says of a head), `format` (the bytes), `storage` (atomic directory writes),
`library` (the `Library` type), `ops` (diff, merge), `dedup` (behavioural
deduplication), `stats`, `bundled`. Imports only headcode.dsl (and
headcode.compiler, lazily, for dedup's default evaluator).
"""

from __future__ import annotations

from pathlib import Path

from headcode.library.bundled import available, bundled
from headcode.library.dedup import dedup
from headcode.library.entries import BASELINES, EFFECTS, FIGURES, Better, HeadEntry, Level, LevelEntry
from headcode.library.errors import LibraryError, MergeConflict
from headcode.library.format import FORMAT_VERSION, bump_version
from headcode.library.identity import ModelIdentity, fingerprint, identity_of
from headcode.library.library import Library
from headcode.library.ops import LibraryDiff, diff, merge

__all__ = [
    "BASELINES", "EFFECTS", "FIGURES", "FORMAT_VERSION", "Better", "HeadEntry", "Level", "LevelEntry", "Library", "LibraryDiff", "LibraryError", "MergeConflict", "ModelIdentity",
    "available", "bump_version", "bundled", "dedup", "diff", "fingerprint", "identity_of", "merge", "verify",
]


def verify(path: str | Path) -> Library:
    """Load a saved library with every check (`Library.load` also confirms that it
    would re-save to the same bytes) and return it."""
    return Library.load(path)
