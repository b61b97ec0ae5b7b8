"""`Library`: an immutable mapping (layer, head) -> HeadEntry, with its programs.

    lib = Library(model=identity, split=split_record, created="2025-01-31T12:00:00Z", version="0.1.0")
    lib = lib.with_head(3, 7, Level.SHORT, Program.of("prev(1)"), source="best_single",
                        validation={"iou": 0.81}, test={"iou": 0.79})
    lib.save("smollm2.lib")
    Library.load("smollm2.lib").program_of(3, 7, Level.SHORT)

Loading checks everything (format version, content hash, programs through the DSL
parser and checker, canonical form and ids, heads inside the model) and executes
nothing. Saving is atomic and deterministic: save -> load -> save is byte-identical.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from headcode import dsl
from headcode.heads import Head
from headcode.library import format as fmt
from headcode.library.entries import HeadEntry, Level, LevelEntry, check_split
from headcode.library.errors import LibraryError
from headcode.library.identity import ModelIdentity
from headcode.library.storage import check_target, read_dir, write_dir


class Library(Mapping):
    """Canonical programs and the heads of one model they explain, at levels of detail."""

    def __init__(
        self,
        *,
        model: ModelIdentity | Mapping,
        split: Mapping,
        created: str,
        version: str = "0.1.0",
        heads: Iterable[HeadEntry] = (),
        programs: Iterable[dsl.Program] = (),
        merged: Mapping[str, str] | None = None,
    ):
        """Every program a head names (by id) must be among `programs`; programs no
        head uses are dropped."""
        self.model = fmt.check_model(model)
        self.split = check_split(split)
        self.created = fmt.check_created(created)
        self.version = fmt.check_version(version)
        self.merged = fmt.check_merged(merged or {})
        pool = {}
        for p in programs.values() if isinstance(programs, Mapping) else programs:
            if not isinstance(p, dsl.Program):
                raise LibraryError(f"programs must be dsl.Program values, not {type(p).__name__}")
            if p.holes:
                raise LibraryError(f"{p.text[:60]!r} is a sketch ({p.holes} hole(s)); a library holds filled "
                                   "programs only (fill it with headcode fit)")
            pool[p.id] = p
        table: dict[Head, HeadEntry] = {}
        for h in heads:
            if not isinstance(h, HeadEntry):
                raise LibraryError(f"heads must be HeadEntry values, not {type(h).__name__}")
            if h.key in table:
                raise LibraryError(f"head {h.name} is given twice")
            for level, entry in h.levels.items():
                if entry.program not in pool:
                    raise LibraryError(f"head {h.name} {level.value} uses program {entry.program}, which is not given")
            table[h.key] = h
        fmt.check_heads_in_model(table.values(), self.model)
        self._heads = dict(sorted(table.items()))
        used = {e.program for h in self._heads.values() for e in h.levels.values()}
        self.programs: Mapping[str, dsl.Program] = MappingProxyType({k: pool[k] for k in sorted(used)})

    # --- mapping (layer, head) -> HeadEntry ---

    def __getitem__(self, key: tuple[int, int]) -> HeadEntry:  # a Head, or any (layer, head) pair
        return self._heads[tuple(key)]

    def __iter__(self) -> Iterator[Head]:
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

    @property
    def levels(self) -> tuple[Level, ...]:
        """The levels of detail some head has, in Level's order."""
        present = {level for h in self._heads.values() for level in h.levels}
        return tuple(level for level in Level if level in present)

    def program_of(self, layer: int, head: int, level: Level) -> dsl.Program:
        """The program explaining a head at a level of detail."""
        entry = self[layer, head]
        if level not in entry.levels:
            raise LibraryError(f"head {entry.name} has no {level.value} program in this library")
        return self.programs[entry[level].program]

    # --- building (each returns a new library) ---

    def replace(self, **changes) -> Library:
        """A copy with some of: model, split, created, version, heads, programs, merged."""
        args = dict(model=self.model, split=self.split, created=self.created, version=self.version,
                    heads=self._heads.values(), programs=self.programs, merged=self.merged)
        args.update(changes)
        return Library(**args)

    def with_head(self, layer: int, head: int, level: Level, program: dsl.Program, *, source: str,
                  validation=None, test=None, baselines=None) -> Library:
        """A copy where head (layer, head) is explained by `program` at `level` (its
        other levels are kept; `baselines`, when given, replace the recorded ones)."""
        if not isinstance(program, dsl.Program):
            raise LibraryError(f"the program must be a dsl.Program, not {type(program).__name__}")
        entry = LevelEntry(program.id, source, validation or {}, test or {})
        old = self._heads.get((layer, head))
        if old is None:
            new = HeadEntry(layer, head, {level: entry}, baselines or {})
        else:
            new = old.with_level(level, entry)
            if baselines is not None:
                new = HeadEntry(layer, head, new.levels, baselines)
        heads = {**self._heads, new.key: new}
        return self.replace(heads=heads.values(), programs=[*self.programs.values(), program])

    def without_head(self, layer: int, head: int) -> Library:
        return self.replace(heads=[h for k, h in self._heads.items() if k != (layer, head)])

    # --- files ---

    def _parts(self) -> fmt.Parts:
        return fmt.Parts(self.version, self.created, self.model, self.split, tuple(self._heads.values()),
                         self.programs, self.merged)

    def files(self) -> dict[str, bytes]:
        """The library's files, name -> bytes, exactly as `save` writes them."""
        return fmt.encode(self._parts())

    @property
    def content_hash(self) -> str:
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
        lib = cls(model=parts.model, split=parts.split, created=parts.created, version=parts.version,
                  heads=parts.heads, programs=parts.programs, merged=parts.merged)
        # A catch-all behind decode's specific checks (decode compared programs.hc
        # with these very programs printed, which `encode` would write); it also
        # refuses a manifest whose reading of a program (size, shape, description)
        # is not what the program says.
        if dict(lib.programs) != dict(parts.programs) or fmt.manifest(lib._parts(), files[fmt.PROGRAMS]) != files[fmt.MANIFEST]:
            raise LibraryError(fmt.misreading(files, parts, where)
                               or f"{where}: does not re-save byte-identically; refusing an edited library")
        return lib

    @classmethod
    def load(cls, path: str | os.PathLike) -> Library:
        """Read and check a library directory; any problem is a one-line LibraryError."""
        path = Path(path)
        return cls.from_files(read_dir(path, fmt.FILES), str(path))

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
