"""Comparing and combining libraries: `diff` and `merge`.

`merge(a, b)` needs the same model identity and corpus; its heads are the union;
a head in both must have identical entries (else MergeConflict lists every such
head); its version is the greater of the two (semantic-version order) and its
`created` the later time (ties broken by the text), so merge is commutative and
associative.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from headcode import dsl
from headcode.library import format as fmt
from headcode.library.errors import LibraryError, MergeConflict
from headcode.library.format import HeadEntry, head_name

_ENTRY_FIELDS = tuple(f.name for f in fields(HeadEntry) if f.name not in ("layer", "head"))


@dataclass(frozen=True)
class HeadChange:
    """A head in both libraries whose entry differs; `fields` names what differs."""

    old: HeadEntry
    new: HeadEntry
    fields: tuple[str, ...]

    @property
    def key(self) -> tuple[int, int]:
        return self.old.key


@dataclass(frozen=True)
class LibraryDiff:
    """What changes from library `a` to library `b`. Empty (falsy) when they agree."""

    model: tuple[tuple[str, object, object], ...]  # (field, a's value, b's value)
    meta: tuple[tuple[str, object, object], ...]  # version, created, corpus, merged
    added: tuple[HeadEntry, ...]  # heads only in b
    removed: tuple[HeadEntry, ...]  # heads only in a
    changed: tuple[HeadChange, ...]
    texts: dict  # program id -> canonical text, for every program named above

    @property
    def changed_program(self) -> tuple[HeadChange, ...]:
        return tuple(c for c in self.changed if "program" in c.fields)

    @property
    def changed_scores(self) -> tuple[HeadChange, ...]:
        return tuple(c for c in self.changed if {"validation", "test"} & set(c.fields))

    def __bool__(self) -> bool:
        return bool(self.model or self.meta or self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """A readable report, one fact per line ('+' added, '-' removed, '~' changed)."""
        out = [f"~ model {k}: {a} -> {b}" for k, a, b in self.model]
        out += [f"~ {k}: {a} -> {b}" for k, a, b in self.meta]
        out += [f"+ {head_name(*h.key)}: {self.texts[h.program]}" for h in self.added]
        out += [f"- {head_name(*h.key)}: {self.texts[h.program]}" for h in self.removed]
        for c in self.changed:
            name = head_name(*c.key)
            if "program" in c.fields:
                out.append(f"~ {name}: {self.texts[c.old.program]}  ->  {self.texts[c.new.program]}")
            for f in ("validation", "test"):
                if f in c.fields:
                    out.append(f"~ {name} {f}: {_scores(getattr(c.old, f))} -> {_scores(getattr(c.new, f))}")
            for f in ("weights", "notes"):
                if f in c.fields:
                    out.append(f"~ {name} {f}: {_value(getattr(c.old, f))} -> {_value(getattr(c.new, f))}")
        return out


def _scores(scores) -> str:
    return "{" + ", ".join(f"{k}: {v:.4g}" for k, v in scores.items()) + "}"


def _value(v) -> str:
    return _scores(v) if not isinstance(v, str) else repr(v)


def diff(a, b) -> LibraryDiff:
    meta = [(k, getattr(a, k), getattr(b, k)) for k in ("version", "created") if getattr(a, k) != getattr(b, k)]
    for k in ("corpus", "merged"):
        if dict(getattr(a, k)) != dict(getattr(b, k)):
            meta.append((k, dict(getattr(a, k)), dict(getattr(b, k))))
    added = tuple(b[k] for k in b if k not in a)
    removed = tuple(a[k] for k in a if k not in b)
    changed = []
    for k in a:
        if k in b and a[k] != b[k]:
            what = tuple(f for f in _ENTRY_FIELDS if getattr(a[k], f) != getattr(b[k], f))
            changed.append(HeadChange(a[k], b[k], what))
    texts = {pid: dsl.show(p) for lib in (a, b) for pid, p in lib.programs.items()}
    return LibraryDiff(tuple(a.model.differences(b.model)), tuple(meta), added, removed, tuple(changed), texts)


def merge(a, b):
    """The union of two libraries of the same model and corpus (see module doc)."""
    if a.model != b.model:
        k, x, y = a.model.differences(b.model)[0]
        raise LibraryError(f"cannot merge: the libraries explain different models (model {k}: {x} vs {y})")
    if dict(a.corpus) != dict(b.corpus):
        raise LibraryError("cannot merge: the libraries were fitted on different corpora or splits, so their "
                           "scores are not comparable")
    conflicts = []
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            what = [f for f in _ENTRY_FIELDS if getattr(a[k], f) != getattr(b[k], f)]
            detail = f"program {a[k].program} vs {b[k].program}" if "program" in what else " and ".join(what)
            conflicts.append((*k, detail))
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
        corpus=a.corpus,
        created=max(a.created, b.created, key=fmt.created_key),
        version=max(a.version, b.version, key=fmt.semver_key),
        heads=heads.values(),
        programs=[*a.programs.values(), *b.programs.values()],
        merged=merged,
    )
