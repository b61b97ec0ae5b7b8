"""The on-disk format, version 2.0: a directory with `manifest.json` and `programs.hc`.

This module is the schema of the bytes: it turns a library's parts into the two
files and back, and refuses anything it would not itself have written. The typed
values of each head are in `entries`. See docs/library-format.md, field by field.

Besides what a library holds, the manifest records for each head and level what
its program is to a reader (size, characters, shape, family, description). Those
are written from the program, so a library whose manifest says otherwise does not
re-save to the same bytes and is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from headcode import dsl
from headcode.dsl.describe import describe, family
from headcode.dsl.shape import shape_id
from headcode.heads import outside
from headcode.library.entries import ID, HeadEntry, Level, LevelEntry, check_split
from headcode.library.errors import LibraryError
from headcode.library.identity import ModelIdentity

FORMAT_VERSION = "2.0"
MANIFEST = "manifest.json"
PROGRAMS = "programs.hc"
FILES = (MANIFEST, PROGRAMS)
PROGRAMS_HEADER = (
    "# headcode program library: canonical programs, one per id, named p_<id>.",
    f"# Generated; do not edit (the content hash in {MANIFEST} covers this file).",
)
REGENERATE = "regenerate it with `headcode explain ... --out LIB` (the bundled library: `make library`)"

_HASH = re.compile(r"sha256:[0-9a-f]{64}\Z")
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?\Z")
_FORMAT = re.compile(r"(\d+)\.(\d+)\Z")


def check_version(version) -> str:
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise LibraryError(f"version must be a semantic version like 1.2.0, not {version!r}")
    return version


def semver_key(version: str) -> tuple:
    """Sort key: numeric major.minor.patch; a pre-release sorts before its release."""
    core, _, pre = version.partition("-")
    return tuple(int(x) for x in core.split(".")) + ((1, "") if not pre else (0, pre))


BUMPS = ("patch", "minor", "major")


def bump_version(version: str, part: str = "patch") -> str:
    """The next version: `part` (patch, minor or major) raised and what follows it reset
    (0.2.3 -> 0.2.4, 0.3.0, 1.0.0). A pre-release becomes its release when that is what
    the bump reaches (1.2.0-rc1 patch or minor -> 1.2.0; 1.2.3-rc1 minor -> 1.3.0), as
    `npm version` does; the result always sorts after `version` (`semver_key`)."""
    check_version(version)
    if part not in BUMPS:
        raise LibraryError(f"a version bump is one of {', '.join(BUMPS)}, not {part!r:.40}")
    core, _, pre = version.partition("-")
    major, minor, patch = (int(x) for x in core.split("."))
    if part == "major":
        new = (major, 0, 0) if pre and minor == patch == 0 else (major + 1, 0, 0)
    elif part == "minor":
        new = (major, minor, 0) if pre and patch == 0 else (major, minor + 1, 0)
    else:
        new = (major, minor, patch) if pre else (major, minor, patch + 1)
    return ".".join(map(str, new))


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
        if not (isinstance(old, str) and ID.match(old) and isinstance(new, str) and ID.match(new)):
            raise LibraryError(f"merged entry {old!r:.40}: {new!r:.40} must map a program id to a program id")
        if old == new:
            raise LibraryError(f"merged entry {old} maps a program to itself")
    return MappingProxyType(dict(sorted(merged.items())))


def check_heads_in_model(heads, model: ModelIdentity) -> None:
    for h in heads:
        if (why := outside(h.key, model.num_layers, model.num_heads, model.name)) is not None:
            raise LibraryError(why)


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


def programs_text(programs: Mapping[str, dsl.Program]) -> str:
    """The program file: the header, then `p_<id> = <canonical program>` by id."""
    named = tuple(dsl.NamedProgram(f"p_{pid}", programs[pid]) for pid in sorted(programs))
    return dsl.format_programs(named, PROGRAMS_HEADER)


@dataclass(frozen=True)
class Parts:
    """Everything a library holds, checked."""

    version: str
    created: str
    model: ModelIdentity
    split: Mapping
    heads: tuple[HeadEntry, ...]
    programs: Mapping[str, dsl.Program]  # by id
    merged: Mapping[str, str]


def encode(parts: Parts) -> dict[str, bytes]:
    """The files' bytes."""
    programs = programs_text(parts.programs).encode("utf-8")
    return {MANIFEST: manifest(parts, programs), PROGRAMS: programs}


def manifest(parts: Parts, programs: bytes) -> bytes:
    """The manifest's bytes, for these parts and this programs file (which its hash covers)."""
    fields = {
        "format_version": FORMAT_VERSION,
        "version": parts.version,
        "created": parts.created,
        "model": parts.model.to_json(),
        "split": {k: dict(v) if isinstance(v, Mapping) else v for k, v in parts.split.items()},
        "heads": [_head_json(h, parts.programs) for h in sorted(parts.heads, key=lambda h: h.key)],
        "merged": dict(parts.merged),
    }
    fields["content_hash"] = content_hash(dump_json(fields), programs)
    return dump_json(fields)


def _head_json(h: HeadEntry, programs: Mapping[str, dsl.Program]) -> dict:
    return {"layer": h.layer, "head": h.head, "baselines": dict(h.baselines),
            "levels": {level.value: _level_json(entry, programs[entry.program]) for level, entry in h.levels.items()}}


def _level_json(entry: LevelEntry, program: dsl.Program) -> dict:
    return {"program": entry.program, "source": entry.source, "validation": dict(entry.validation),
            "test": dict(entry.test), **reading(program)}


def reading(program: dsl.Program) -> dict:
    """What a program is to a reader: recorded beside each head's program."""
    return {"size": program.size, "chars": program.chars, "shape": shape_id(program),
            "family": family(program).value, "description": describe(program)}


# --- decoding: refuse anything `encode` would not have written --------------------------------

_TOP = ("content_hash", "created", "format_version", "heads", "merged", "model", "split", "version")
_HEAD = ("baselines", "head", "layer", "levels")
_LEVEL = ("chars", "description", "family", "program", "shape", "size", "source", "test", "validation")


def decode(files: dict[str, bytes], where: str) -> Parts:
    """Check the raw bytes of a library's files and return its parts.

    Nothing is executed: programs only go through the DSL parser, checker and
    canonical form. Every refusal is a LibraryError naming the file.
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
    except RecursionError:
        raise LibraryError(f"{mpath}: JSON nested too deeply to be a manifest") from None
    if not isinstance(manifest, dict):
        raise LibraryError(f"{mpath}: must hold a JSON object")

    fv = manifest.get("format_version")
    m = _FORMAT.match(fv) if isinstance(fv, str) else None
    if m is None:
        raise LibraryError(f"{mpath}: format_version must be a string like \"{FORMAT_VERSION}\", not {fv!r:.40}")
    if m.group(0) != FORMAT_VERSION:
        major = FORMAT_VERSION.split(".")[0]
        if int(m.group(1)) < int(major):
            raise LibraryError(f"{mpath}: library format {fv} is older than this headcode reads ({FORMAT_VERSION}); "
                               + REGENERATE)
        raise LibraryError(f"{mpath}: library format {fv} is not read by this headcode (it reads {FORMAT_VERSION}); "
                           "upgrade headcode")

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

    used = {e.program for h in parts["heads"] for e in h.levels.values()}
    for h in parts["heads"]:
        for level, e in h.levels.items():
            if e.program not in programs:
                raise LibraryError(f"{mpath}: head {h.name} {level.value} uses program {e.program}, not in {PROGRAMS}")
    unused = sorted(set(programs) - used)
    if unused:
        raise LibraryError(f"{ppath}: program p_{unused[0]} is not used by any head")
    if programs_text(programs) != texts[PROGRAMS]:
        raise LibraryError(f"{ppath}: not in canonical layout (header, programs sorted by id); refusing an edited file")
    return Parts(programs=programs, **parts)


def misreading(files: dict[str, bytes], parts: Parts, where: str) -> str | None:
    """Why a manifest that decoded does not re-encode, when the reason is a recorded
    reading (size, shape, description...) that is not what its program gives; else None.

    Called only after a mismatch, so a sound library computes each reading once. The
    content hash held, so such a reading was either edited in with a recomputed hash
    or written by a headcode with other rules."""
    raw = {(r["layer"], r["head"]): r["levels"] for r in json.loads(files[MANIFEST])["heads"]}
    for h in parts.heads:
        for level, e in h.levels.items():
            recorded, derived = raw[h.layer, h.head][level.value], reading(parts.programs[e.program])
            for key, value in derived.items():
                if recorded[key] != value:
                    return (f"{where}/{MANIFEST}: head {h.name} {level.value}: the recorded {key} "
                            f"({recorded[key]!r:.40}) is not what this headcode reads from its program "
                            f"({value!r:.40}); edited, or written by a headcode with other rules: " + REGENERATE)
    return None


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
    heads: list[HeadEntry] = []
    seen = set()
    for i, h in enumerate(manifest["heads"]):
        entry = _head(h, i)
        if entry.key in seen:
            raise LibraryError(f"head {entry.name} is listed twice")
        if heads and entry.key < heads[-1].key:
            raise LibraryError(f"heads are not sorted by (layer, head): {entry.name} comes after {heads[-1].name}")
        seen.add(entry.key)
        heads.append(entry)
    check_heads_in_model(heads, model)
    return {
        "version": check_version(manifest["version"]),
        "created": check_created(manifest["created"]),
        "model": model,
        "split": check_split(manifest["split"]),
        "heads": tuple(heads),
        "merged": check_merged(manifest["merged"]),
    }


def _head(h, i: int) -> HeadEntry:
    if not isinstance(h, dict):
        raise LibraryError(f"heads[{i}] must be an object")
    _check_fields(h, _HEAD, f"heads[{i}] has unknown field '{{}}'", f"heads[{i}] has no '{{}}'")
    levels = h["levels"]
    if not isinstance(levels, dict):
        raise LibraryError(f"heads[{i}].levels must be an object of level -> explanation")
    entries = {}
    for name, e in levels.items():
        where = f"heads[{i}].levels.{name}"
        try:
            level = Level(name)
        except ValueError:
            raise LibraryError(f"{where}: unknown level (levels are {', '.join(m.value for m in Level)})") from None
        if not isinstance(e, dict):
            raise LibraryError(f"{where} must be an object")
        _check_fields(e, _LEVEL, f"{where} has unknown field '{{}}'", f"{where} has no '{{}}'")
        try:
            entries[level] = LevelEntry(e["program"], e["source"], e["validation"], e["test"])
        except LibraryError as err:
            raise LibraryError(f"{where}: {err}") from None
    for k in ("layer", "head"):
        if isinstance(h[k], bool) or not isinstance(h[k], int):
            raise LibraryError(f"heads[{i}].{k} must be a whole number >= 0, not {h[k]!r:.40}")
    return HeadEntry(h["layer"], h["head"], entries, h["baselines"])


def _programs(text: str, path: str) -> dict[str, dsl.Program]:
    try:
        named = dsl.parse_programs(text, path)
    except dsl.DslError as err:
        d = err.diagnostics[0]
        raise LibraryError(f"{path}:{d.line}:{d.column}: program does not parse: {d.message}") from None
    programs = {}
    for p in named:
        if not p.name.startswith("p_") or not ID.match(p.name[2:]):
            raise LibraryError(f"{path}:{p.line}: program name '{p.name}' is not p_<16-hex-digit id>")
        if not p.as_written:
            raise LibraryError(f"{path}:{p.line}: program {p.name} is not in canonical form")
        if p.program.id != p.name[2:]:
            raise LibraryError(f"{path}:{p.line}: program {p.name} has id {p.program.id}, not {p.name[2:]}")
        if p.program.holes:
            raise LibraryError(f"{path}:{p.line}: program {p.name} is a sketch (it has holes); a library "
                               "holds filled programs only")
        programs[p.program.id] = p.program
    return programs
