"""`Library`: an immutable mapping (layer, head) -> HeadEntry, with its programs.

    lib = Library(model=identity, corpus={"name": "stories", "split_seed": 0},
                  created="2025-01-31T12:00:00Z", version="0.1.0")
    lib = lib.with_head(3, 7, "prev(1)", validation={"iou": 0.81}, test={"iou": 0.79})
    lib.save("smollm2.lib")
    Library.load("smollm2.lib")[3, 7].program   # the canonical program id

Loading checks everything (format version, content hash, programs through the DSL
parser and checker, canonical form and ids, heads inside the model) and executes
nothing. Saving is atomic and deterministic: save -> load -> save is byte-identical.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from headcode import dsl
from headcode.library import format as fmt
from headcode.library.errors import LibraryError
from headcode.library.format import HeadEntry, head_name
from headcode.library.identity import ModelIdentity
from headcode.library.storage import check_target, read_dir, write_dir


@functools.lru_cache(maxsize=8192)
def _canonical(program) -> tuple[str, object]:
    """(id, canonical pattern) of a pattern or program text (memoised: libraries
    are rebuilt on every change, and canonicalising is the costly part)."""
    pattern = dsl.parse(program) if isinstance(program, str) else program
    pattern = dsl.canonical(pattern)
    return dsl.program_id(pattern), pattern


class Library(Mapping):
    """Canonical programs and the heads of one model they explain."""

    def __init__(
        self,
        *,
        model: ModelIdentity | Mapping,
        corpus: Mapping,
        created: str,
        version: str = "0.1.0",
        heads: Iterable[HeadEntry] = (),
        programs: Iterable = (),
        merged: Mapping[str, str] | None = None,
    ):
        """`programs` are patterns or program texts (stored canonical, once per id);
        every head's `program` id must be among them. Programs no head uses are dropped."""
        self.model = fmt.check_model(model)
        self.corpus = fmt.check_corpus(corpus)
        self.created = fmt.check_created(created)
        self.version = fmt.check_version(version)
        self.merged = fmt.check_merged(merged or {})
        # Programs from `fmt.decode` are verified canonical under their ids already.
        self._checked = isinstance(programs, fmt.CheckedPrograms)
        if self._checked:
            pool = programs
        else:
            pool = dict(_canonical(p) for p in (programs.values() if isinstance(programs, Mapping) else programs))
        table: dict[tuple[int, int], HeadEntry] = {}
        for h in heads:
            if not isinstance(h, HeadEntry):
                raise LibraryError(f"heads must be HeadEntry values, not {type(h).__name__}")
            if h.key in table:
                raise LibraryError(f"head {head_name(*h.key)} is given twice")
            if h.program not in pool:
                raise LibraryError(f"head {head_name(*h.key)} uses program {h.program}, which is not given")
            table[h.key] = h
        fmt.check_heads_in_model(table.values(), self.model)
        self._heads = dict(sorted(table.items()))
        used = {h.program for h in self._heads.values()}
        self.programs: Mapping[str, object] = MappingProxyType({k: pool[k] for k in sorted(used)})

    # --- mapping (layer, head) -> HeadEntry ---

    def __getitem__(self, key: tuple[int, int]) -> HeadEntry:
        return self._heads[tuple(key)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Library):
            return NotImplemented
        return self.files() == other.files()

    __hash__ = None

    def __repr__(self) -> str:
        return (f"<Library {self.model.name} v{self.version}: {len(self)} heads, "
                f"{len(self.programs)} programs>")

    def program_of(self, layer: int, head: int):
        """The canonical program (ir.Pattern) explaining a head."""
        return self.programs[self[layer, head].program]

    def program_text(self, program_id: str) -> str:
        return dsl.show(self.programs[program_id])

    # --- building (each returns a new library) ---

    def replace(self, **changes) -> Library:
        """A copy with some of: model, corpus, created, version, heads, programs, merged."""
        args = dict(model=self.model, corpus=self.corpus, created=self.created, version=self.version,
                    heads=self._heads.values(), programs=self._programs(), merged=self.merged)
        args.update(changes)
        return Library(**args)

    def with_head(self, layer: int, head: int, program, *, validation=None, test=None, weights=None,
                  notes: str = "") -> Library:
        """A copy where head (layer, head) is explained by `program` (text or pattern)."""
        pid, pattern = _canonical(program)
        entry = HeadEntry(layer, head, pid, validation or {}, test or {}, weights or {}, notes)
        heads = {**self._heads, entry.key: entry}
        return self.replace(heads=heads.values(), programs=[*self.programs.values(), pattern])

    def without_head(self, layer: int, head: int) -> Library:
        return self.replace(heads=[h for k, h in self._heads.items() if k != (layer, head)])

    # --- files ---

    def _programs(self) -> Mapping[str, object]:
        """The programs, marked as checked when they came from `fmt.decode`."""
        return fmt.CheckedPrograms(self.programs) if self._checked else self.programs

    def _parts(self) -> fmt.Parts:
        return fmt.Parts(self.version, self.created, self.model, self.corpus, tuple(self._heads.values()),
                         self._programs(), self.merged)

    def files(self) -> dict[str, bytes]:
        """The library's files, name -> bytes, exactly as `save` writes them."""
        return fmt.encode(self._parts())

    @property
    def content_hash(self) -> str:
        import json

        return json.loads(self.files()[fmt.MANIFEST])["content_hash"]

    def save(self, path: str | os.PathLike) -> None:
        """Write the library directory atomically (replacing an existing library)."""
        write_dir(path, self.files(), marker=fmt.MANIFEST)

    @staticmethod
    def check_target(path: str | os.PathLike) -> None:
        """Refuse, before any work, a path that `save` would refuse to replace."""
        check_target(path, marker=fmt.MANIFEST)

    @classmethod
    def from_files(cls, files: dict[str, bytes], where: str = "<library>") -> Library:
        """Check a library's files (name -> bytes) and build it; `where` names it in errors."""
        parts = fmt.decode(files, where)
        lib = cls(model=parts.model, corpus=parts.corpus, created=parts.created, version=parts.version,
                  heads=parts.heads, programs=parts.programs, merged=parts.merged)
        # A catch-all behind decode's specific checks. decode compared programs.hc
        # with these very programs printed, so only the manifest is encoded again.
        known = files[fmt.PROGRAMS] if dict(lib.programs) == parts.programs else None
        if fmt.encode(lib._parts(), known) != files:
            raise LibraryError(f"{where}: does not re-save byte-identically; refusing an edited library")
        return lib

    @classmethod
    def load(cls, path: str | os.PathLike) -> Library:
        """Read and check a library directory; any problem is a one-line LibraryError."""
        path = Path(path)
        lib = cls.from_files(read_dir(path, fmt.FILES), str(path))
        return lib

    def verify(self) -> None:
        """Check that the library's files decode to the same library and re-encode
        to the same bytes (what `verify(path)` checks for a saved library)."""
        files = self.files()
        if Library.from_files(files).files() != files:
            raise LibraryError("library does not re-save byte-identically")

    # --- attaching to a model ---

    def check_model(self, identity: ModelIdentity, force: bool = False) -> list[str]:
        """Refuse a model that is not the one this library was fitted to.

        A fingerprint (or architecture / shape) mismatch raises LibraryError
        unless `force`; forced, the differences come back as warning lines. Heads
        outside the given model are refused even when forced.
        """
        diffs = sorted((d for d in self.model.differences(identity) if d[0] != "name"),
                       key=lambda d: d[0] != "fingerprint")  # the name is only a label
        warnings = [f"model {k}: library has {a!r}, model has {b!r}" for k, a, b in diffs]
        if diffs and not force:
            k, a, b = diffs[0]
            raise LibraryError(
                f"model mismatch: library was fitted to {self.model.name} ({k} {a}) but this model has {k} {b}; "
                "force it to attach anyway"
            )
        fmt.check_heads_in_model(self._heads.values(), identity)
        return warnings

    # --- comparing and combining (see headcode.library.ops) ---

    def diff(self, other: Library):
        from headcode.library.ops import diff

        return diff(self, other)

    def merge(self, other: Library) -> Library:
        from headcode.library.ops import merge

        return merge(self, other)
