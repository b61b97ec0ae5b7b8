"""The on-disk format, version 1.0: a directory with `manifest.json` and `programs.hc`.

This module is the schema: it turns a library's parts into the two files' bytes
and back, and refuses anything it would not itself have written. See
docs/library-format.md for the format, field by field.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from headcode import dsl
from headcode.library.errors import LibraryError
from headcode.library.identity import ModelIdentity

FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
PROGRAMS = "programs.hc"
FILES = (MANIFEST, PROGRAMS)
PROGRAMS_HEADER = (
    "# headcode program library: canonical programs, one per id, named p_<id>.",
    f"# Generated; do not edit (the content hash in {MANIFEST} covers this file).",
)

_ID = re.compile(r"[0-9a-f]{16}\Z")
_HASH = re.compile(r"sha256:[0-9a-f]{64}\Z")
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?\Z")
_FORMAT = re.compile(r"(\d+)\.(\d+)\Z")


def head_name(layer: int, head: int) -> str:
    return f"L{layer}.H{head}"


def _numbers(value, what: str) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        raise LibraryError(f"{what} must be an object of name -> number")
    out = {}
    for k in sorted(value):
        v = value[k]
        if not isinstance(k, str) or not k:
            raise LibraryError(f"{what} has a name that is not a non-empty string: {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise LibraryError(f"{what}['{k}'] must be a finite number, not {v!r}")
        out[k] = float(v)
    return MappingProxyType(out)


@dataclass(frozen=True)
class HeadEntry:
    """What the library says about one head: its program (by canonical id), extra
    fitted numbers, held-out scores (metric -> value) and free-text notes."""

    layer: int
    head: int
    program: str
    validation: Mapping[str, float] = field(default_factory=dict)
    test: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        where = f"head {head_name(self.layer, self.head)}"
        for name in ("layer", "head"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LibraryError(f"head entry {name} must be a whole number >= 0, not {v!r}")
        if not isinstance(self.program, str) or not _ID.match(self.program):
            raise LibraryError(f"{where}: program must be a 16-hex-digit program id, not {self.program!r}")
        for name in ("validation", "test", "weights"):
            object.__setattr__(self, name, _numbers(getattr(self, name), f"{where}: {name}"))
        if not isinstance(self.notes, str):
            raise LibraryError(f"{where}: notes must be a string")

    @property
    def key(self) -> tuple[int, int]:
        return (self.layer, self.head)

    def to_json(self) -> dict:
        return {
            "layer": self.layer, "head": self.head, "program": self.program,
            "validation": dict(self.validation), "test": dict(self.test),
            "weights": dict(self.weights), "notes": self.notes,
        }


def check_version(version) -> str:
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise LibraryError(f"version must be a semantic version like 1.2.0, not {version!r}")
    return version


def semver_key(version: str) -> tuple:
    """Sort key: numeric major.minor.patch; a pre-release sorts before its release."""
    core, _, pre = version.partition("-")
    return tuple(int(x) for x in core.split(".")) + ((1, "") if not pre else (0, pre))


def check_created(created) -> str:
    if not isinstance(created, str):
        raise LibraryError(f"created must be an ISO 8601 time string, not {created!r}")
    try:
        datetime.fromisoformat(created)
    except ValueError:
        raise LibraryError(f"created must be an ISO 8601 time like 2025-01-31T12:00:00Z, not {created!r}") from None
    return created


def created_key(created: str) -> tuple:
    t = datetime.fromisoformat(created)
    if t.tzinfo is None:  # naive times are taken as UTC
        from datetime import timezone

        t = t.replace(tzinfo=timezone.utc)
    return (t.timestamp(), created)


def check_corpus(corpus) -> Mapping:
    if not isinstance(corpus, Mapping):
        raise LibraryError("corpus must be an object with at least name and split_seed")
    if not isinstance(corpus.get("name"), str):
        raise LibraryError("corpus.name must be a string")
    seed = corpus.get("split_seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LibraryError(f"corpus.split_seed must be a whole number, not {seed!r}")
    try:  # must survive a JSON round trip unchanged
        copy = json.loads(json.dumps(dict(corpus), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise LibraryError(f"corpus must hold only JSON values: {err}") from None
    if copy != dict(corpus):
        raise LibraryError("corpus must hold only JSON values (strings, numbers, lists, objects)")
    return MappingProxyType(copy)


def check_model(model) -> ModelIdentity:
    if isinstance(model, ModelIdentity):
        model = model.to_json()
    if not isinstance(model, Mapping):
        raise LibraryError("model must be an object")
    fields = ("name", "architecture", "num_layers", "num_heads", "num_kv_heads", "fingerprint")
    extra = sorted(set(model) - set(fields))
    if extra:
        raise LibraryError(f"model has unknown field '{extra[0]}'")
    for k in fields:
        if k not in model:
            raise LibraryError(f"model.{k} is missing")
    for k in ("name", "architecture", "fingerprint"):
        if not isinstance(model[k], str) or not model[k]:
            raise LibraryError(f"model.{k} must be a non-empty string")
    for k in ("num_layers", "num_heads", "num_kv_heads"):
        v = model[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise LibraryError(f"model.{k} must be a whole number >= 1, not {v!r}")
    if not _HASH.match(model["fingerprint"]):
        raise LibraryError("model.fingerprint must be 'sha256:' and 64 hex digits")
    return ModelIdentity(**{k: model[k] for k in fields})


def check_merged(merged) -> Mapping[str, str]:
    if not isinstance(merged, Mapping):
        raise LibraryError("merged must be an object of program id -> program id")
    for old, new in merged.items():
        if not (isinstance(old, str) and _ID.match(old) and isinstance(new, str) and _ID.match(new)):
            raise LibraryError(f"merged entry {old!r}: {new!r} must map a program id to a program id")
        if old == new:
            raise LibraryError(f"merged entry {old} maps a program to itself")
    return MappingProxyType(dict(sorted(merged.items())))


# --- bytes -----------------------------------------------------------------------


def dump_json(obj) -> bytes:
    """Sorted keys, 2-space indent, UTF-8, a trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def content_hash(manifest_without_hash: bytes, programs: bytes) -> str:
    """SHA-256 over each file's name, length and bytes, manifest first."""
    h = hashlib.sha256()
    for name, data in ((MANIFEST, manifest_without_hash), (PROGRAMS, programs)):
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return "sha256:" + h.hexdigest()


def programs_text(programs: Mapping[str, object]) -> str:
    """The program file: the header, then `p_<id> = <canonical program>` by id."""
    named = tuple(dsl.NamedProgram(f"p_{pid}", programs[pid]) for pid in sorted(programs))
    # Programs that `decode` checked are their own canonical form: print them as they are.
    return dsl.format_programs(named, PROGRAMS_HEADER, canonicalise=not isinstance(programs, CheckedPrograms))


class CheckedPrograms(dict):
    """id -> program as `decode` returns them: each program is verified to be its own
    canonical form, under its own id. A `Library` built from them takes them as they
    are, which saves canonicalising every program again (the costly part of a load)."""


@dataclass(frozen=True)
class Parts:
    """Everything a library holds, checked."""

    version: str
    created: str
    model: ModelIdentity
    corpus: Mapping
    heads: tuple[HeadEntry, ...]
    programs: Mapping[str, object]  # id -> canonical ir.Pattern
    merged: Mapping[str, str]


def encode(parts: Parts, programs_file: bytes | None = None) -> dict[str, bytes]:
    """The files' bytes. `programs_file`: the programs file, when the caller has it
    already for exactly these programs (what `decode` checked), to save printing them."""
    programs = programs_text(parts.programs).encode("utf-8") if programs_file is None else programs_file
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": parts.version,
        "created": parts.created,
        "model": parts.model.to_json(),
        "corpus": dict(parts.corpus),
        "heads": [h.to_json() for h in sorted(parts.heads, key=lambda h: h.key)],
        "merged": dict(parts.merged),
    }
    manifest["content_hash"] = content_hash(dump_json(manifest), programs)
    return {MANIFEST: dump_json(manifest), PROGRAMS: programs}


# --- decoding: refuse anything `encode` would not have written --------------------------------

_TOP = ("content_hash", "corpus", "created", "format_version", "heads", "merged", "model", "version")
_HEAD = ("head", "layer", "notes", "program", "test", "validation", "weights")


def decode(files: dict[str, bytes], where: str) -> Parts:
    """Check the raw bytes of a library's files and return its parts.

    Nothing is executed: programs only go through the DSL parser, checker and
    canonicaliser. Every refusal is a LibraryError naming the file.
    """
    mpath, ppath = f"{where}/{MANIFEST}", f"{where}/{PROGRAMS}"
    texts = {}
    for name, path in ((MANIFEST, mpath), (PROGRAMS, ppath)):
        try:
            texts[name] = files[name].decode("utf-8")
        except UnicodeDecodeError as err:
            raise LibraryError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    try:
        manifest = json.loads(texts[MANIFEST])
    except json.JSONDecodeError as err:
        raise LibraryError(f"{mpath}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(manifest, dict):
        raise LibraryError(f"{mpath}: must hold a JSON object")

    fv = manifest.get("format_version")
    m = _FORMAT.match(fv) if isinstance(fv, str) else None
    if m is None:
        raise LibraryError(f"{mpath}: format_version must be a string like \"{FORMAT_VERSION}\", not {fv!r}")
    if int(m.group(1)) != int(FORMAT_VERSION.split(".")[0]):
        raise LibraryError(f"{mpath}: unsupported library format version {fv} (this headcode reads 1.x)")

    stated = manifest.get("content_hash")
    if not isinstance(stated, str):
        raise LibraryError(f"{mpath}: content_hash is missing")
    rest = {k: v for k, v in manifest.items() if k != "content_hash"}
    try:
        actual = content_hash(dump_json(rest), files[PROGRAMS])
    except ValueError as err:  # NaN or infinity in the manifest
        raise LibraryError(f"{mpath}: {err}") from None
    if actual != stated:
        raise LibraryError(f"{mpath}: content hash mismatch: the library was changed after it was saved")
    if dump_json(manifest) != files[MANIFEST]:
        raise LibraryError(f"{mpath}: not in canonical layout (sorted keys, 2-space indent); refusing an edited file")

    try:
        parts = _manifest_parts(manifest)
    except LibraryError as err:
        raise LibraryError(f"{mpath}: {err}") from None
    programs = _programs(texts[PROGRAMS], ppath)

    used = {h.program for h in parts["heads"]}
    for h in parts["heads"]:
        if h.program not in programs:
            raise LibraryError(f"{mpath}: head {head_name(*h.key)} uses program {h.program}, not in {PROGRAMS}")
    unused = sorted(set(programs) - used)
    if unused:
        raise LibraryError(f"{ppath}: program p_{unused[0]} is not used by any head")
    if programs_text(programs) != texts[PROGRAMS]:
        raise LibraryError(f"{ppath}: not in canonical layout (header, programs sorted by id); refusing an edited file")
    return Parts(programs=programs, **parts)


def _check_fields(obj: dict, allowed, unknown: str, missing: str) -> None:
    """Refuse unknown and missing keys, in that order (messages formatted with the key)."""
    for k in obj:
        if k not in allowed:
            raise LibraryError(unknown.format(k))
    for k in allowed:
        if k not in obj:
            raise LibraryError(missing.format(k))


def _manifest_parts(manifest: dict) -> dict:
    _check_fields(manifest, _TOP, "unknown field '{}' (written by a newer headcode?)", "field '{}' is missing")
    model = check_model(manifest["model"])
    if not isinstance(manifest["heads"], list):
        raise LibraryError("heads must be a list")
    heads, seen = [], set()
    for i, h in enumerate(manifest["heads"]):
        if not isinstance(h, dict):
            raise LibraryError(f"heads[{i}] must be an object")
        _check_fields(h, _HEAD, f"heads[{i}] has unknown field '{{}}'", f"heads[{i}] has no '{{}}'")
        entry = HeadEntry(**h)
        if entry.key in seen:
            raise LibraryError(f"head {head_name(*entry.key)} is listed twice")
        if heads and entry.key < heads[-1].key:
            raise LibraryError(f"heads are not sorted by (layer, head): {head_name(*entry.key)} comes after "
                               f"{head_name(*heads[-1].key)}")
        seen.add(entry.key)
        heads.append(entry)
    check_heads_in_model(heads, model)
    return {
        "version": check_version(manifest["version"]),
        "created": check_created(manifest["created"]),
        "model": model,
        "corpus": check_corpus(manifest["corpus"]),
        "heads": tuple(heads),
        "merged": check_merged(manifest["merged"]),
    }


def check_heads_in_model(heads, model: ModelIdentity) -> None:
    for h in heads:
        if h.layer >= model.num_layers or h.head >= model.num_heads:
            raise LibraryError(
                f"head {head_name(*h.key)} is outside the model ({model.name} has {model.num_layers} layers "
                f"of {model.num_heads} heads)"
            )


@contextlib.contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector. Reading a library allocates millions of
    small objects that all stay alive (trees, no cycles), and the collector would
    scan them over and over as they pile up: a quarter of the load time, for nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _programs(text: str, path: str) -> CheckedPrograms:
    with _collector_paused():
        return _check_programs(text, path)


def _check_programs(text: str, path: str) -> CheckedPrograms:
    try:
        named = dsl.parse_programs(text, path)
    except dsl.DslError as err:
        d = err.diagnostics[0]
        raise LibraryError(f"{path}:{d.line}:{d.column}: program does not parse: {d.message}") from None
    programs = CheckedPrograms()
    for p in named:
        if not p.name.startswith("p_") or not _ID.match(p.name[2:]):
            raise LibraryError(f"{path}:{p.line}: program name '{p.name}' is not p_<16-hex-digit id>")
        canonical = dsl.canonical(p.pattern)  # once: the id is that of its text
        if canonical != p.pattern:
            raise LibraryError(f"{path}:{p.line}: program {p.name} is not in canonical form")
        pid = dsl.text_id(dsl.show(canonical))
        if pid != p.name[2:]:
            raise LibraryError(f"{path}:{p.line}: program {p.name} has id {pid}, not {p.name[2:]}")
        programs[pid] = canonical
    return programs
