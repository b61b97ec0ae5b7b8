"""Comparing and combining libraries: `diff` and `merge`.

`merge(a, b)` needs the same model identity and split; its heads are the union;
a head in both must have identical entries (else MergeConflict lists every such
head); its version is the greater of the two (semantic-version order) and its
`created` the later time (ties broken by the text), so merge is commutative and
associative.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from headcode.heads import Head
from headcode.library import format as fmt
from headcode.library.entries import HeadEntry, Level, LevelEntry
from headcode.library.errors import LibraryError, MergeConflict

_LEVEL_FIELDS = tuple(f.name for f in fields(LevelEntry))


def changed_fields(a: HeadEntry, b: HeadEntry) -> tuple[str, ...]:
    """What differs between two entries of one head: `baselines`, a level present in
    one only (`short`), or a level's field (`short.program`, `full.test`, ...)."""
    out = ["baselines"] if dict(a.baselines) != dict(b.baselines) else []
    for level in Level:
        old, new = a.levels.get(level), b.levels.get(level)
        if old == new:
            continue
        if old is None or new is None:
            out.append(level.value)
        else:
            out += [f"{level.value}.{f}" for f in _LEVEL_FIELDS if getattr(old, f) != getattr(new, f)]
    return tuple(out)


@dataclass(frozen=True)
class HeadChange:
    """A head in both libraries whose entry differs; `fields` names what differs."""

    old: HeadEntry
    new: HeadEntry
    fields: tuple[str, ...]

    @property
    def key(self) -> Head:
        return self.old.key


@dataclass(frozen=True)
class LibraryDiff:
    """What changes from library `a` to library `b`. Empty (falsy) when they agree."""

    model: tuple[tuple[str, object, object], ...]  # (field, a's value, b's value)
    meta: tuple[tuple[str, object, object], ...]  # version, created, split, merged
    added: tuple[HeadEntry, ...]  # heads only in b
    removed: tuple[HeadEntry, ...]  # heads only in a
    changed: tuple[HeadChange, ...]
    texts: dict  # program id -> canonical text, for every program named above

    @property
    def changed_program(self) -> tuple[HeadChange, ...]:
        return tuple(c for c in self.changed if any(f.endswith(".program") or f in _LEVELS for f in c.fields))

    @property
    def changed_scores(self) -> tuple[HeadChange, ...]:
        return tuple(c for c in self.changed if any(f.endswith((".validation", ".test")) for f in c.fields))

    def __bool__(self) -> bool:
        return bool(self.model or self.meta or self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """A readable report, one fact per line ('+' added, '-' removed, '~' changed)."""
        out = [f"~ model {k}: {a} -> {b}" for k, a, b in self.model]
        out += [f"~ {k}: {a} -> {b}" for k, a, b in self.meta]
        out += [f"+ {h.name}: {self._programs(h)}" for h in self.added]
        out += [f"- {h.name}: {self._programs(h)}" for h in self.removed]
        for c in self.changed:
            for f in c.fields:
                out.append(f"~ {c.old.name} {f}: {self._value(c.old, f)} -> {self._value(c.new, f)}")
        return out

    def _programs(self, h: HeadEntry) -> str:
        return "; ".join(f"{level.value} {self.texts[e.program]}" for level, e in h.levels.items())

    def _value(self, h: HeadEntry, f: str) -> str:
        if f == "baselines":
            return _scores(h.baselines)
        level, _, name = f.partition(".")
        entry = h.levels.get(Level(level))
        if entry is None:
            return "(none)"
        if not name:
            return self.texts[entry.program]
        value = getattr(entry, name)
        if name == "program":
            return self.texts[value]
        return _scores(value) if not isinstance(value, str) else repr(value)


_LEVELS = {level.value for level in Level}


def _scores(scores) -> str:
    return "{" + ", ".join(f"{k}: {v:.4g}" for k, v in scores.items()) + "}"


def diff(a, b) -> LibraryDiff:
    meta = [(k, getattr(a, k), getattr(b, k)) for k in ("version", "created") if getattr(a, k) != getattr(b, k)]
    for k in ("split", "merged"):
        if dict(getattr(a, k)) != dict(getattr(b, k)):
            meta.append((k, dict(getattr(a, k)), dict(getattr(b, k))))
    added = tuple(b[k] for k in b if k not in a)
    removed = tuple(a[k] for k in a if k not in b)
    changed = []
    for k in a:
        if k in b and (what := changed_fields(a[k], b[k])):
            changed.append(HeadChange(a[k], b[k], what))
    texts = {pid: p.text for lib in (a, b) for pid, p in lib.programs.items()}
    return LibraryDiff(tuple(a.model.differences(b.model)), tuple(meta), added, removed, tuple(changed), texts)


def merge(a, b):
    """The union of two libraries of the same model and split (see module doc)."""
    if a.model != b.model:
        k, x, y = a.model.differences(b.model)[0]
        raise LibraryError(f"cannot merge: the libraries explain different models (model {k}: {x} vs {y})")
    if dict(a.split) != dict(b.split):
        raise LibraryError("cannot merge: the libraries were fitted on different corpora or splits, so their "
                           "scores are not comparable")
    conflicts = []
    for k in sorted(set(a) & set(b)):
        if what := changed_fields(a[k], b[k]):
            conflicts.append((*k, ", ".join(what)))
    if conflicts:
        raise MergeConflict(conflicts)
    merged = dict(a.merged)
    for old, new in b.merged.items():
        if merged.get(old, new) != new:
            raise LibraryError(f"cannot merge: program {old} was merged into {merged[old]} in one library "
                               f"and into {new} in the other")
        merged[old] = new
    heads = {**dict(a.items()), **dict(b.items())}
    return type(a)(
        model=a.model,
        split=a.split,
        created=max(a.created, b.created, key=fmt.created_key),
        version=max(a.version, b.version, key=fmt.semver_key),
        heads=heads.values(),
        programs=[*a.programs.values(), *b.programs.values()],
        merged=merged,
    )
