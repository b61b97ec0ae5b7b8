"""The program library: format round trips, integrity refusals, diff/merge laws,
behavioural dedup, atomic saves and the `headcode library` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headcode import dsl, testing
from headcode.dsl.tokens import TokenTable
from headcode.library import (
    HeadEntry,
    Level,
    Library,
    LibraryError,
    MergeConflict,
    ModelIdentity,
    bundled,
    dedup,
    fingerprint,
    storage,
    verify,
)
from headcode.library import format as fmt

MODEL = ModelIdentity("tiny", "LlamaForCausalLM", 3, 4, 2, fingerprint({"layers": 3}, {"a": 0, "b": 1}))
OTHER_MODEL = ModelIdentity("tiny", "LlamaForCausalLM", 3, 4, 2, fingerprint({"layers": 3}, {"a": 0, "c": 1}))
SPLIT = {"corpus": "stories", "shape": "packed", "max_len": 64, "one_per_line": False, "seed": 7,
         "counts": {"train": 20, "validation": 4, "test": 4}, "sequences": {"train": 20, "validation": 4, "test": 3},
         "tokens": {"train": 900, "validation": 180, "test": 130}}
CREATED = "2025-01-31T12:00:00Z"
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHORT, FULL = Level.SHORT, Level.FULL


def empty(**kw) -> Library:
    return Library(**{"model": MODEL, "split": SPLIT, "created": CREATED, **kw})


def add(lib: Library, layer: int, head: int, program, level: Level = FULL, source: str = "score", **kw) -> Library:
    return lib.with_head(layer, head, level, dsl.Program.of(program), source=source, **kw)


def small() -> Library:
    lib = add(empty(version="1.2.0"), 0, 1, "0.3*bos + 0.7*prev(1)", validation={"iou": 0.8},
              test={"iou": 0.75, "jsd": 0.1})
    lib = add(lib, 2, 3, "last(punct) else bos", SHORT, "best_single", test={"iou": 0.5}, baselines={"bos": 0.2})
    return add(lib, 2, 3, "softmax(2*bos + key.punct)", test={"iou": 0.55})


# --- strategies -------------------------------------------------------------------

scores = st.dictionaries(st.sampled_from(["iou", "jsd", "kl"]),
                         st.floats(allow_nan=False, allow_infinity=False, width=64), max_size=2)
baselines = st.dictionaries(st.sampled_from(["bos", "uniform", "greedy_mixture"]),
                            st.floats(0, 1, allow_nan=False), max_size=2)
versions = st.builds(lambda a, b, c: f"{a}.{b}.{c}", *[st.integers(0, 12)] * 3)
times = st.integers(0, 2_000_000_000).map(lambda s: datetime.fromtimestamp(s, timezone.utc).isoformat())
ALL_KEYS = [(layer, head) for layer in range(MODEL.num_layers) for head in range(MODEL.num_heads)]


PROGRAMS = testing.programs()  # built once: building strategies per draw is slow
# For the merge laws the programs' shapes do not matter; a pool keeps the test fast.
SIMPLE = st.one_of(st.sampled_from(["bos", "prev(1)", "self", "last(punct) else bos", "0.5*bos + 0.5*self",
                                    "softmax(2*bos - 0.5*log_dist)", "decay(0.5)"]), PROGRAMS)


@st.composite
def libraries(draw, keys=None, programs=PROGRAMS):
    keys = draw(st.sets(st.sampled_from(ALL_KEYS), max_size=5)) if keys is None else keys
    lib = empty(version=draw(versions), created=draw(times))
    for layer, head in sorted(keys):
        for level in draw(st.sets(st.sampled_from(list(Level)), min_size=1)):
            lib = add(lib, layer, head, draw(programs), level, draw(st.sampled_from(["score", "llm", "best_single"])),
                      validation=draw(scores), test=draw(scores), baselines=draw(baselines))
    return lib


# --- round trips --------------------------------------------------------------------


@FAST
@given(libraries())
def test_random_libraries_round_trip_byte_identically(tmp_path_factory, lib):
    path = tmp_path_factory.mktemp("lib") / "x.lib"
    lib.save(path)
    first = {name: (path / name).read_bytes() for name in fmt.FILES}
    loaded = Library.load(path)
    assert loaded == lib and dict(loaded) == dict(lib)
    loaded.save(path)
    assert {name: (path / name).read_bytes() for name in fmt.FILES} == first
    assert sorted(os.listdir(path)) == sorted(fmt.FILES)


def test_layout_programs_once_per_id_heads_sorted(tmp_path):
    lib = add(add(small(), 1, 0, "prev(1) else bos"), 0, 0, "key.pos == query.pos - 1 else bos")
    assert len(lib) == 4 and len(lib.programs) == 4  # the last two are one canonical program
    lib.save(tmp_path / "l")
    manifest = json.loads((tmp_path / "l" / "manifest.json").read_text())
    assert [(h["layer"], h["head"]) for h in manifest["heads"]] == [(0, 0), (0, 1), (1, 0), (2, 3)]
    assert manifest["format_version"] == "2.0" and manifest["version"] == "1.2.0"
    assert manifest["created"] == CREATED and manifest["split"] == SPLIT
    assert manifest["model"]["fingerprint"] == MODEL.fingerprint
    short = manifest["heads"][3]["levels"]["short"]
    assert short == {"program": dsl.Program.of("last(punct) else bos").id, "source": "best_single",
                     "validation": {}, "test": {"iou": 0.5}, "size": 2, "chars": 20,
                     "shape": dsl.text_id("last(punct) else bos"), "family": "punctuation/delimiter",
                     "description": "The latest punctuation mark; otherwise the first token."}
    assert manifest["heads"][3]["baselines"] == {"bos": 0.2}
    text = (tmp_path / "l" / "programs.hc").read_text()
    assert text.count(" = ") == 4 and f"p_{dsl.Program.of('prev(1)').id} = prev(1)" in text
    assert (tmp_path / "l" / "manifest.json").read_bytes().endswith(b"}\n")
    assert lib[0, 1][FULL].program == dsl.Program.of("0.7*prev(1) + 0.3*bos").id
    assert lib.program_of(2, 3, SHORT) == dsl.Program.of("last(punct) else bos")
    assert lib.levels == (SHORT, FULL) and list(lib[2, 3].levels) == [SHORT, FULL]
    with pytest.raises(LibraryError, match="L0.H1 has no short program"):
        lib.program_of(0, 1, SHORT)
    lib.verify()


def test_fingerprint_ignores_where_the_model_was_loaded_from():
    config = {"num_hidden_layers": 2, "vocab_size": 3}
    a = fingerprint({**config, "_name_or_path": "/a", "transformers_version": "5"}, {"x": 0, "y": 1})
    assert a == fingerprint({**config, "_name_or_path": "/b"}, {"y": 1, "x": 0})
    assert a != fingerprint(config, {"x": 0, "y": 2}) and a != fingerprint({**config, "vocab_size": 4}, {"x": 0, "y": 1})


# --- integrity ----------------------------------------------------------------------


def test_every_single_byte_change_is_refused(tmp_path):
    lib = small()
    lib.save(tmp_path / "l")
    files = {name: (tmp_path / "l" / name).read_bytes() for name in fmt.FILES}
    checked = 0
    for name, data in files.items():
        for i in range(len(data)):
            for mask in (0x01, 0x20, 0x80):
                changed = bytearray(data)
                changed[i] ^= mask
                with pytest.raises(LibraryError):
                    Library.from_files({**files, name: bytes(changed)}, "l")
                checked += 1
        for extra in (data + b"\n", data[:-1], b" " + data):  # a byte added or removed
            with pytest.raises(LibraryError):
                Library.from_files({**files, name: extra}, "l")
    assert checked > 1000
    # and through the disk, the same for one byte of each file
    for name in fmt.FILES:
        path = tmp_path / "l" / name
        middle = len(files[name]) // 2
        path.write_bytes(files[name][:middle] + b"\x00" + files[name][middle + 1:])
        with pytest.raises(LibraryError):
            Library.load(tmp_path / "l")
        path.write_bytes(files[name])
    Library.load(tmp_path / "l")


def forge(manifest: dict, programs: str) -> dict[str, bytes]:
    """Files with a *valid* content hash, to reach the checks behind it."""
    manifest = {k: v for k, v in manifest.items() if k != "content_hash"}
    data = programs.encode()
    manifest["content_hash"] = fmt.content_hash(fmt.dump_json(manifest), data)
    return {fmt.MANIFEST: fmt.dump_json(manifest), fmt.PROGRAMS: data}


def parts():
    files = small().files()
    return json.loads(files[fmt.MANIFEST]), files[fmt.PROGRAMS].decode()


def refused(files) -> str:
    with pytest.raises(LibraryError) as info:
        Library.from_files(files, "L")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_refusal_other_format_versions_say_what_to_do():
    manifest, programs = parts()
    manifest["format_version"] = "1.0"
    assert refused(forge(manifest, programs)) == (
        "L/manifest.json: library format 1.0 is older than this headcode reads (2.0); regenerate it with "
        "`headcode explain ... --out LIB` (the bundled library: `make library`)")
    for version in ("2.1", "3.0"):
        manifest["format_version"] = version
        assert refused(forge(manifest, programs)) == (
            f"L/manifest.json: library format {version} is not read by this headcode (it reads 2.0); upgrade headcode")
    manifest["format_version"] = 1
    assert "format_version must be a string" in refused(forge(manifest, programs))


def test_refusal_content_hash_mismatch_names_the_manifest():
    files = small().files()
    files[fmt.PROGRAMS] = files[fmt.PROGRAMS].replace(b"0.7*prev(1)", b"0.6*prev(1)")
    assert refused(files) == "L/manifest.json: content hash mismatch: the library was changed after it was saved"


def test_refusal_reformatted_manifest_even_with_a_valid_hash():
    manifest, programs = parts()
    files = forge(manifest, programs)
    files[fmt.MANIFEST] = json.dumps(json.loads(files[fmt.MANIFEST]), indent=4, sort_keys=True).encode() + b"\n"
    assert "not in canonical layout" in refused(files)


def test_refusal_program_that_does_not_parse_gives_line_and_column():
    manifest, programs = parts()
    broken = programs.replace("last(punct)", "last(pnct)")
    message = refused(forge(manifest, broken))
    line = broken.splitlines().index(next(ln for ln in broken.splitlines() if "pnct" in ln)) + 1
    col = broken.splitlines()[line - 1].index("pnct") + 1
    assert message.startswith(f"L/programs.hc:{line}:{col}: program does not parse: ") and "pnct" in message


def test_refusal_non_canonical_program_and_wrong_id():
    manifest, programs = parts()
    pid = dsl.Program.of("0.3*bos + 0.7*prev(1)").id
    message = refused(forge(manifest, programs.replace("0.7*prev(1) + 0.3*bos", "0.3*bos + 0.7*prev(1)")))
    assert message == f"L/programs.hc:4: program p_{pid} is not in canonical form"
    wrong = "0123456789abcdef"
    message = refused(forge(manifest, programs.replace(f"p_{pid}", f"p_{wrong}")))
    assert message == f"L/programs.hc:4: program p_{wrong} has id {pid}, not {wrong}"
    assert "is not p_<16-hex-digit id>" in refused(forge(manifest, programs.replace(f"p_{pid}", "sink")))


def test_refusal_head_with_missing_program_and_unused_program():
    manifest, programs = parts()
    manifest["heads"][0]["levels"]["full"]["program"] = "0123456789abcdef"
    assert refused(forge(manifest, programs)) == (
        "L/manifest.json: head L0.H1 full uses program 0123456789abcdef, not in programs.hc")
    manifest, programs = parts()
    extra = dsl.Program.of("bos").text
    programs += f"\np_{dsl.Program.of(extra).id} = {extra}\n"
    assert "is not used by any head" in refused(forge(manifest, programs))


def test_refusal_duplicate_heads_and_heads_outside_the_model():
    manifest, programs = parts()
    manifest["heads"].append(dict(manifest["heads"][0]))
    assert refused(forge(manifest, programs)) == "L/manifest.json: head L0.H1 is listed twice"
    manifest, programs = parts()
    manifest["heads"].reverse()
    assert refused(forge(manifest, programs)) == (
        "L/manifest.json: heads are not sorted by (layer, head): L0.H1 comes after L2.H3")
    manifest, programs = parts()
    manifest["heads"][1]["layer"] = 3
    assert refused(forge(manifest, programs)) == (
        "L/manifest.json: head L3.H3 is outside the model (tiny has 3 layers of 4 heads)")
    with pytest.raises(LibraryError, match="outside the model"):
        add(empty(), 0, 4, "bos")


def test_refusal_bad_fields():
    for path, value, expected in [
        (("version",), "1.0", "version must be a semantic version"),
        (("created",), "yesterday", "created must be an ISO 8601 time"),
        (("split", "seed"), "7", "split.seed must be a whole number"),
        (("split", "counts", "test"), -1, "split.counts must give a whole number >= 0"),
        (("model", "num_layers"), 0, "model.num_layers must be a whole number >= 1"),
        (("heads", 0, "levels", "full", "test", "iou"), "high", "heads[0].levels.full: test['iou'] must be a finite"),
        (("heads", 0, "levels", "full", "test", "accuracy"), 0.5, "unknown figure 'accuracy'"),
        (("heads", 0, "levels", "medium"), {}, "heads[0].levels.medium: unknown level"),
        (("heads", 0, "levels", "full", "source"), "Some Thing", "source must be a proposer name"),
        (("heads", 1, "baselines", "best"), 0.1, "unknown baseline 'best'"),
        (("extra",), 1, "unknown field 'extra'"),
    ]:
        manifest, programs = parts()
        node = manifest
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        assert expected in refused(forge(manifest, programs)), path


def test_check_model_refuses_a_different_fingerprint_unless_forced():
    lib = small()
    assert lib.check_model(MODEL) == []
    with pytest.raises(LibraryError, match=r"^model mismatch: library was fitted to tiny \(fingerprint sha256:"):
        lib.check_model(OTHER_MODEL)
    assert lib.check_model(OTHER_MODEL, force=True)[0].startswith("model fingerprint: library has")
    smaller = ModelIdentity("tiny", "LlamaForCausalLM", 2, 4, 2, MODEL.fingerprint)
    with pytest.raises(LibraryError, match="outside the model"):
        lib.check_model(smaller, force=True)


def test_missing_and_unreadable_libraries(tmp_path):
    with pytest.raises(LibraryError, match="no such library"):
        Library.load(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text("{}")
    with pytest.raises(LibraryError, match=r"half/programs.hc: missing"):
        Library.load(tmp_path / "half")


# --- atomic save ----------------------------------------------------------------------


def test_a_manifest_that_misreads_a_program_is_refused():
    manifest, programs = parts()
    manifest["heads"][0]["levels"]["full"]["description"] = "The first token."
    message = refused(forge(manifest, programs))
    assert message.startswith("L/manifest.json: head L0.H1 full: the recorded description ('The first token.') "
                              "is not what this headcode reads from its program"), message
    assert "regenerate it with `headcode explain" in message
    manifest, programs = parts()
    manifest["heads"][0]["levels"]["full"]["size"] = 1
    assert "the recorded size (1) is not what this headcode reads" in refused(forge(manifest, programs))


def test_a_library_holds_no_sketch():
    with pytest.raises(LibraryError, match="is a sketch"):
        add(empty(), 0, 0, "?*bos + ?*prev(1)")
    manifest, programs = parts()  # a programs.hc that holds one is refused, with its line
    sketch = dsl.Program.of("?*bos + ?*prev(1)")
    first = next(line for line in programs.splitlines() if line.startswith("p_"))
    edited = programs.replace(first, f"p_{sketch.id} = {sketch.text}\n{first}", 1)
    assert "is a sketch" in refused(forge(manifest, edited))


def test_interrupted_save_leaves_the_old_library(tmp_path, monkeypatch):
    old, new = small(), add(small(), 1, 1, "bos")
    old.save(tmp_path / "l")
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    real_write = storage._write_file
    monkeypatch.setattr(storage, "_write_file", failing_write)
    with pytest.raises(LibraryError, match="cannot write: No space left on device"):
        new.save(tmp_path / "l")
    monkeypatch.undo()
    assert Library.load(tmp_path / "l") == old
    assert sorted(os.listdir(tmp_path)) == [".l.lock", "l"]  # no temporary directory left behind

    real_replace, seen = os.replace, []

    def failing_replace(a, b):  # the rename of the new directory into place fails
        seen.append((a, b))
        if len(seen) == 2:
            raise OSError(5, "I/O error")
        real_replace(a, b)

    from headcode import fileio

    # Where one atomic exchange is not available, the two renames are undone.
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(LibraryError):
        new.save(tmp_path / "l")
    monkeypatch.undo()
    assert Library.load(tmp_path / "l") == old and sorted(os.listdir(tmp_path)) == [".l.lock", "l"]
    new.save(tmp_path / "l")
    assert Library.load(tmp_path / "l") == new


_SAVER = """
import sys
from headcode import dsl
from headcode.library import Library, Level
lib = Library.load(sys.argv[1])
other = lib.with_head(1, 1, Level.FULL, dsl.Program.of(sys.argv[2]), source="score")
for i in range(int(sys.argv[3])):
    (lib if i % 2 else other).save(sys.argv[1])
"""


def test_concurrent_saves_are_serialised_and_a_reader_always_sees_a_whole_library(tmp_path):
    target = tmp_path / "l"
    small().save(target)
    expected = [Library.load(target)]
    for program in ("bos", "self"):
        expected.append(Library.load(target).with_head(1, 1, FULL, dsl.Program.of(program), source="score"))
    savers = [subprocess.Popen([sys.executable, "-c", _SAVER, str(target), program, "40"],
                               stderr=subprocess.PIPE, text=True) for program in ("bos", "self")]
    loads = 0
    while any(s.poll() is None for s in savers):
        assert Library.load(target) in expected  # never missing, never half of one
        loads += 1
    for saver in savers:
        assert saver.returncode == 0, saver.stderr.read()
    assert loads > 0
    assert sorted(os.listdir(tmp_path)) == [".l.lock", "l"]  # nothing left behind


def test_the_next_save_removes_what_killed_saves_left_but_not_a_live_one(tmp_path):
    from headcode.fileio import NewDirectory

    target = tmp_path / "l"
    small().save(target)
    for stale in (".l.new-killed", ".l.old-killed"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "programs.hc").write_bytes(b"x" * 1000)
    live = NewDirectory(target)  # a save in progress (this process holds its lock)
    add(small(), 1, 1, "bos").save(target)
    assert sorted(os.listdir(tmp_path)) == sorted([".l.lock", "l", live.path.name])
    live.abort()
    assert sorted(os.listdir(tmp_path)) == [".l.lock", "l"]


def test_save_keeps_the_permissions_of_the_directory_it_replaces(tmp_path):
    small().save(tmp_path / "new")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o777 & ~umask  # not a temporary directory's 0700
    os.chmod(tmp_path / "new", 0o750)
    add(small(), 1, 1, "bos").save(tmp_path / "new")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o750


def test_atomic_file_writes_keep_permissions(tmp_path):
    from headcode import fileio

    umask = os.umask(0)
    os.umask(umask)
    fileio.write_text(tmp_path / "new.hc", "bos\n")
    assert (tmp_path / "new.hc").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    os.chmod(tmp_path / "new.hc", 0o640)
    fileio.write_text(tmp_path / "new.hc", "self\n")
    assert (tmp_path / "new.hc").stat().st_mode & 0o777 == 0o640
    small().save(tmp_path / "lib")
    assert all((f.stat().st_mode & 0o777) == 0o666 & ~umask for f in (tmp_path / "lib").iterdir())


def test_save_refuses_to_replace_something_that_is_not_a_library(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    with pytest.raises(LibraryError, match="is not a library"):
        small().save(tmp_path / "docs")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LibraryError, match="not a directory"):
        small().save(tmp_path / "file")
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "precious"


# --- diff and merge -------------------------------------------------------------------


@FAST
@given(libraries())
def test_a_library_diffed_with_itself_is_empty(lib):
    d = lib.diff(Library.from_files(lib.files()))
    assert not d and d.lines() == []


def test_diff_reports_added_removed_changed_and_model():
    a = small()
    b = add(add(a.without_head(0, 1), 1, 1, "bos"), 2, 3, "prev(1)", SHORT, "best_single", test={"iou": 0.6})
    d = a.diff(b)
    assert [h.key for h in d.added] == [(1, 1)] and [h.key for h in d.removed] == [(0, 1)]
    assert [c.key for c in d.changed_program] == [(2, 3)] and [c.key for c in d.changed_scores] == [(2, 3)]
    assert d.changed[0].fields == ("short.program", "short.test")
    lines = d.lines()
    assert "+ L1.H1: full bos" in lines
    assert "~ L2.H3 short.program: last(punct) else bos -> prev(1) else bos" in lines
    assert "~ L2.H3 short.test: {iou: 0.5} -> {iou: 0.6}" in lines
    m = a.replace(model=OTHER_MODEL).diff(a).model
    assert [k for k, _, _ in m] == ["fingerprint"]


@st.composite
def disjoint_triples(draw):
    owners = draw(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=len(ALL_KEYS), max_size=len(ALL_KEYS)))
    return [draw(libraries({k for k, o in zip(ALL_KEYS, owners) if o == i}, SIMPLE)) for i in range(3)]


@FAST
@given(disjoint_triples())
def test_merge_is_commutative_and_associative_over_disjoint_heads(libs):
    a, b, c = libs
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    ab = a.merge(b)
    assert set(ab) == set(a) | set(b) and ab.merge(a) == ab  # idempotent on what it already holds
    assert fmt.semver_key(ab.version) == max(fmt.semver_key(a.version), fmt.semver_key(b.version))


def test_merge_reports_every_conflicting_head_and_accepts_identical_overlap():
    a = small()
    b = add(add(small(), 0, 1, "bos"), 2, 3, "last(punct) else bos", SHORT, "best_single", test={"iou": 0.4})
    with pytest.raises(MergeConflict) as info:
        a.merge(b)
    assert [(layer, head) for layer, head, _ in info.value.conflicts] == [(0, 1), (2, 3)]
    assert str(info.value).startswith("cannot merge: 2 head(s) explained differently: L0.H1 (full.program, ")
    assert "L2.H3 (short.test)" in str(info.value)
    assert a.merge(add(small(), 1, 0, "bos")) == add(a, 1, 0, "bos")


def test_merge_refuses_different_models_or_corpora():
    with pytest.raises(LibraryError, match="different models .*fingerprint"):
        small().merge(empty(model=OTHER_MODEL))
    with pytest.raises(LibraryError, match="different corpora"):
        small().merge(empty(split={**SPLIT, "seed": 8}))


# --- dedup ------------------------------------------------------------------------------

TABLES = [TokenTable.from_words(w) for w in (["Tom", "saw", "a", "dog", "."], ["She", "ran", ",", "and", "he", "sat", "on", "the", "mat", "!"])]


def stand_in_evaluate(behaviour: dict):
    """Test helper: each program's matrix is looked up by its id (a stand-in for the compiler)."""
    def evaluate(programs, table):
        n = len(table)
        return np.stack([np.eye(n) * behaviour[p.id] for p in programs])
    return evaluate


def test_dedup_merges_coinciding_programs_into_the_shortest():
    texts = ["bos", "prev(1)", "softmax(2*bos)", "last(punct) else bos"]
    lib = empty()
    for i, t in enumerate(texts):
        lib = add(lib, 0, i, t)
    ids = [dsl.Program.of(t).id for t in texts]
    # bos == softmax(2*bos) exactly; prev(1) within 1e-10 of bos; last(punct) differs
    fake = stand_in_evaluate({ids[0]: 1.0, ids[1]: 1.0 + 1e-10, ids[2]: 1.0, ids[3]: 2.0})
    out = dedup(lib, TABLES, fake)
    assert dict(out.merged) == {ids[1]: ids[0], ids[2]: ids[0]}
    assert [out[0, i][FULL].program for i in range(4)] == [ids[0], ids[0], ids[0], ids[3]]
    assert set(out.programs) == {ids[0], ids[3]}
    assert Library.from_files(out.files()) == out  # the merge record round-trips
    assert dedup(out, TABLES, fake) == out
    with pytest.raises(LibraryError, match="at least one probe table"):
        dedup(lib, [], fake)


def test_dedup_with_the_real_evaluator():
    compiler = pytest.importorskip("headcode.compiler")
    if not hasattr(compiler, "evaluate_many"):
        pytest.skip("headcode.compiler.evaluate_many not written yet")
    # prev(1) is empty only at row 0, where bos and self coincide
    lib = add(add(add(empty(), 0, 0, "prev(1) else self"), 0, 1, "prev(1) else bos"), 0, 2, "bos")
    out = dedup(lib, TABLES)
    assert len(out.programs) == 2 and out[0, 0][FULL].program == out[0, 1][FULL].program != out[0, 2][FULL].program
    assert list(out.merged.values()) == [out[0, 0][FULL].program]


# --- bundled ------------------------------------------------------------------------------


def test_bundled_libraries(tmp_path, monkeypatch):
    import sys

    bundled_module = sys.modules["headcode.library.bundled"]

    monkeypatch.setattr(bundled_module, "DATA", tmp_path)
    with pytest.raises(LibraryError, match=r"no bundled library 'nope' \(available: none are installed\)"):
        bundled("nope")
    small().save(tmp_path / "tiny")
    assert bundled("tiny") == small()
    with pytest.raises(LibraryError, match=r"\(available: tiny\)"):
        bundled("smollm")


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, capsys):
    """`headcode` with only the library commands (other command modules may be mid-change)."""
    import headcode.cli

    monkeypatch.setattr(headcode.cli, "COMMAND_MODULES", ("headcode.cli.library",))

    def run(*argv):
        code = headcode.cli.main(["library", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_inspect_verify_stats(tmp_path, cli):
    small().save(tmp_path / "l")
    code, out, err = cli("inspect", tmp_path / "l", "--json")
    data = json.loads(out)
    assert code == 0 and err == ""
    assert data["format_version"] == "2.0" and data["version"] == "1.2.0" and data["model"]["name"] == "tiny"
    assert data["num_programs"] == 3 and data["num_heads"] == 2 and data["levels"] == ["short", "full"]
    short = data["heads"][1]["levels"]["short"]
    assert short["program"] == "last(punct) else bos" and short["id"] == dsl.Program.of("last(punct) else bos").id
    assert (short["size"], short["chars"], short["family"]) == (2, 20, "punctuation/delimiter")
    assert short["description"] == "The latest punctuation mark; otherwise the first token."
    assert short["test"] == {"iou": 0.5} and short["source"] == "best_single" and "shape" in short
    assert data["heads"][1]["baselines"] == {"bos": 0.2}
    code, out, _ = cli("inspect", tmp_path / "l")
    assert code == 0 and "L0.H1" in out and "0.7*prev(1) + 0.3*bos" in out
    assert out.index("last(punct) else bos") < out.index("softmax(2*bos + key.punct)")  # short first
    code, out, _ = cli("inspect", tmp_path / "l", "--heads", "L0.H1", "--json")
    assert code == 0 and [(h["layer"], h["head"]) for h in json.loads(out)["heads"]] == [(0, 1)]
    code, out, err = cli("inspect", tmp_path / "l", "--heads", "L1.H0")
    assert code == 2 and err == f"headcode: error: --heads: {tmp_path}/l has no program for L1.H0\n"
    code, out, err = cli("inspect", tmp_path / "l", "--heads", "L9.H0")
    assert code == 2 and "outside the model" in err
    code, out, _ = cli("verify", tmp_path / "l")
    assert code == 0 and out.startswith("OK ") and "2 heads, 3 programs" in out
    code, out, _ = cli("stats", tmp_path / "l")
    assert code == 0 and "short: 1 heads, 1 distinct programs, 1 distinct shapes" in out
    assert "full: 2 heads, 2 distinct programs, 2 distinct shapes" in out and "test iou: n=2" in out
    code, out, _ = cli("stats", tmp_path / "l", "--json")
    full = json.loads(out)["levels"]["full"]
    assert full["families"] == {"previous token": 1, "sink": 1} and full["size"]["q100"] == 2
    assert full["weakest"] == [{"head": "L2.H3", "test_iou": 0.55}, {"head": "L0.H1", "test_iou": 0.75}]
    code, out, _ = cli("stats", tmp_path / "l")
    assert "least well explained (test iou): L2.H3 0.550, L0.H1 0.750" in out


def test_cli_verify_fails_with_one_line(tmp_path, cli):
    small().save(tmp_path / "l")
    path = tmp_path / "l" / "programs.hc"
    path.write_bytes(path.read_bytes().replace(b"0.3", b"0.4"))
    code, out, err = cli("verify", tmp_path / "l")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == f"headcode: error: {tmp_path}/l/manifest.json: content hash mismatch: the library was changed after it was saved\n"
    code, _, err = cli("verify", tmp_path / "missing")
    assert code == 2 and err.count("\n") == 1 and "no such library" in err


def test_cli_diff_and_merge(tmp_path, cli):
    a, b = small(), add(empty(version="1.3.0"), 1, 1, "bos")
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    code, out, _ = cli("diff", tmp_path / "a", tmp_path / "a")
    assert code == 0 and out == "no differences\n"
    code, out, _ = cli("diff", tmp_path / "a", tmp_path / "b")
    assert code == 0 and "+ L1.H1: full bos" in out and "- L0.H1: full 0.7*prev(1) + 0.3*bos" in out
    assert "~ version: 1.2.0 -> 1.3.0" in out
    code, out, _ = cli("merge", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "c")
    assert code == 0 and "wrote" in out and "3 heads" in out
    assert Library.load(tmp_path / "c") == a.merge(b) and Library.load(tmp_path / "c").version == "1.3.0"
    add(b, 0, 1, "bos").save(tmp_path / "b")
    code, out, err = cli("merge", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "d")
    assert code == 2 and err.count("\n") == 1 and "L0.H1 (full.program, " in err and not (tmp_path / "d").exists()


def test_verify_function_checks_a_saved_library(tmp_path):
    small().save(tmp_path / "l")
    assert verify(tmp_path / "l") == small()
    assert isinstance(small()[0, 1], HeadEntry)


def test_cli_verify_against_a_model(tmp_path, cli, capsys):
    from headcode.library import identity_of
    from headcode.loaders.models import build_tiny_model, load_model

    path = build_tiny_model("llama", tmp_path / "model")
    loaded = load_model(str(path))
    identity = identity_of("tiny-llama", loaded.model, loaded.tokenizer)
    assert identity == identity_of("tiny-llama", load_model(str(path)).model, loaded.tokenizer)  # stable
    capsys.readouterr()  # the builder's progress bars
    add(empty(model=identity), 1, 3, "bos").save(tmp_path / "good")
    code, out, err = cli("verify", tmp_path / "good", "--model", path)
    assert code == 0 and out.startswith("OK ") and err == ""
    other = ModelIdentity(**{**identity.to_json(), "fingerprint": MODEL.fingerprint})
    add(empty(model=other), 1, 3, "bos").save(tmp_path / "bad")
    code, out, err = cli("verify", tmp_path / "bad", "--model", path)
    assert code == 2 and err.count("\n") == 1 and "model mismatch" in err and "force" in err
    code, out, err = cli("verify", tmp_path / "bad", "--model", path, "--force")
    assert code == 0 and out.startswith("warning: model fingerprint") and "\nOK " in out


def _fifo_or_skip(path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(path)


@pytest.mark.parametrize("kind", ["fifo", "device", "huge", "nested"])
def test_loading_refuses_what_is_not_a_bounded_regular_file_at_once(tmp_path, kind, monkeypatch):
    from headcode import fileio

    small().save(tmp_path / "lib")
    programs, manifest = tmp_path / "lib" / "programs.hc", tmp_path / "lib" / "manifest.json"
    if kind == "fifo":  # used to block forever
        programs.unlink()
        _fifo_or_skip(programs)
        expected = "not a regular file"
    elif kind == "device":  # a link to /dev/zero used to be read until memory ran out
        programs.unlink()
        programs.symlink_to("/dev/zero")
        expected = "not a regular file"
    elif kind == "huge":
        monkeypatch.setattr(fileio, "MAX_INPUT", 1000)
        monkeypatch.setattr(fileio.read_bytes, "__defaults__", (1000, None))  # (limit, dir_fd)
        programs.write_bytes(b"#" * 5000)
        expected = "over the limit of 1,000"
    else:  # used to escape as a RecursionError
        manifest.write_text("[" * 100_000 + "]" * 100_000)
        expected = "nested too deeply"
    with pytest.raises(LibraryError, match=expected) as err:
        Library.load(tmp_path / "lib")
    assert "\n" not in str(err.value)
