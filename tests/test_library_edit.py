"""`headcode library edit`: one head's program replaced at one level, rescored on the
library's own validation and test splits, the version bumped, the diff printed
(the tiny model and library of conftest; one slow test on the bundled library)."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from headcode.cli import main
from headcode.library import Level, Library, bump_version
from headcode.library.errors import LibraryError

NEW = "0.7*prev(1) + 0.3*bos"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def inspect(capsys, lib) -> dict:
    code, out, _ = run(capsys, "library", "inspect", lib, "--json")
    assert code == 0
    return json.loads(out)


def score(capsys, program: str, head: str, model: str, split: str, count: int) -> dict:
    code, out, err = run(capsys, "score", "--program", program, "--heads", head, "--model", model, "--split", split,
                         "--max-seqs", count, "--json", "--quiet")
    assert code == 0, err
    return json.loads(out)["heads"][0]


@pytest.fixture(scope="module")
def edit(tiny_library, tiny_model, tmp_path_factory):
    """One edit of the tiny library: L1.H2's short program (argv, exit code, stdout, stderr, output)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("edit") / "edited.lib"
    argv = ["library", "edit", str(tiny_library), "--head", "L1.H2", "--program", NEW, "--out", str(out), "--quiet"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_edit_replaces_exactly_one_head_and_level(edit, tiny_library, capsys):
    code, _, err, out = edit
    assert code == 0, err
    old, new = inspect(capsys, tiny_library), inspect(capsys, out)
    assert new["version"] == bump_version(old["version"]) == "0.2.1" and new["created"] >= old["created"]
    assert len(new["heads"]) == len(old["heads"]) == 8
    for before, after in zip(old["heads"], new["heads"], strict=True):
        if (after["layer"], after["head"]) != (1, 2):
            assert after == before
            continue
        assert after["baselines"] == before["baselines"]
        assert after["levels"]["full"] == before["levels"]["full"]
        short = after["levels"]["short"]
        assert short["program"] == NEW and short["source"] == "edit"
        assert set(short["validation"]) == set(short["test"]) == {"iou", "iou_all_rows", "jsd"}
        assert short["test"] != before["levels"]["short"]["test"]
    assert {k: v for k, v in new.items() if k not in ("version", "created", "content_hash", "heads", "num_programs")} \
        == {k: v for k, v in old.items() if k not in ("version", "created", "content_hash", "heads", "num_programs")}
    assert run(capsys, "library", "verify", out)[0] == 0


def test_the_recorded_figures_are_what_score_gives_on_the_library_split(edit, tiny_library, tiny_model, capsys):
    """The library's splits, cut again: its first 4 validation and 4 test sequences."""
    out = edit[3]
    entry = Library.load(out)[1, 2][Level.SHORT]
    split = Library.load(tiny_library).split
    for name, recorded in (("validation", entry.validation), ("test", entry.test)):
        scored = score(capsys, NEW, "L1.H2", tiny_model, name, split["sequences"][name])
        assert recorded == {k: round(scored[k], 4) for k in ("iou", "iou_all_rows", "jsd")}, name


def test_the_diff_is_what_library_diff_prints(edit, tiny_library, capsys):
    code, stdout, _, out = edit
    _, diff, _ = run(capsys, "library", "diff", tiny_library, out)
    lines = stdout.splitlines()
    assert lines[0] == f"L1.H2 short: {NEW}"
    assert "\n".join(lines[1:-1]) + "\n" == diff
    assert "~ version: 0.2.0 -> 0.2.1" in diff and f"~ L1.H2 short.program: uniform -> {NEW}" in diff
    assert "~ L1.H2 short.source: 'named' -> 'edit'" in diff and "1 changed head(s)" in diff
    assert lines[-1] == f"wrote {out}: version 0.2.0 -> 0.2.1, 8 heads, 2 programs"


def test_the_same_program_keeps_its_figures_and_out_may_be_lib(tiny_library, tiny_model, tmp_path, capsys):
    """Rescoring the program a library holds gives what explain recorded (so the splits
    are cut again exactly), and LIB is replaced in place when --out is LIB."""
    lib = tmp_path / "lib"
    shutil.copytree(tiny_library, lib)
    before = Library.load(lib)
    program = before.program_of(0, 3, Level.FULL).text
    file = tmp_path / "mine.hc"
    file.write_text(f"# what it was\nL0.H3 = {program}\n\nother = bos\n")
    code, out, err = run(capsys, "library", "edit", lib, "--head", "L0.H3", "--program", file, "--level", "full",
                         "--out", lib, "--bump", "minor", "--quiet")
    assert code == 0, err
    after = Library.load(lib)
    assert after.version == "0.3.0" and out.startswith(f"L0.H3 full (L0.H3 of {file}): {program}\n")
    old, new = before[0, 3][Level.FULL], after[0, 3][Level.FULL]
    assert (new.program, new.validation, new.test, new.source) == (old.program, old.validation, old.test, "edit")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["lib", "mine.hc"]


def test_a_head_the_library_lacks_is_added_with_its_baselines(tiny_library, tiny_model, tmp_path, capsys):
    fewer = tmp_path / "fewer.lib"
    Library.load(tiny_library).without_head(1, 0).save(fewer)
    out = tmp_path / "more.lib"
    code, stdout, err = run(capsys, "library", "edit", fewer, "--head", "L1.H0", "--program", "bos", "--out", out,
                            "--quiet")
    assert code == 0, err
    entry = Library.load(out)[1, 0]
    assert list(entry.levels) == [Level.SHORT] and set(entry.baselines) == {"bos", "uniform"}
    assert entry.baselines["bos"] == entry[Level.SHORT].test["iou"]  # the program is the bos baseline
    assert "+ L1.H0: short bos" in stdout and "1 added, 0 removed, 0 changed head(s)" in stdout


def test_refusals_are_one_line_and_come_before_the_model(tiny_library, tmp_path, capsys, monkeypatch):
    import headcode.loaders.models as models

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(models, "load_model", no_model)
    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("keep me too")
    base = ["library", "edit", tiny_library, "--head", "L0.H1", "--program", "bos"]
    cases = [
        (base + ["--out", plain], 2, "exists and is not a directory"),
        (base + ["--out", full], 2, "exists and is not a library (no manifest.json)"),
        (["library", "edit", tiny_library, "--head", "L2.H0", "--program", "bos", "--out", tmp_path / "x"], 2,
         "head L2.H0 is outside the model"),
        (["library", "edit", tiny_library, "--head", "L0.H1,L0.H2", "--program", "bos", "--out", tmp_path / "x"], 2,
         "--head takes one head"),
        (["library", "edit", tmp_path / "nothing", "--head", "L0.H1", "--program", "bos", "--out", tmp_path / "x"], 2,
         "no such library"),
    ]
    for argv, want, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == want and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, \
            (argv, err)
    code, _, err = run(capsys, "library", "edit", tiny_library, "--head", "L0.H1", "--program", "bos +",
                       "--out", tmp_path / "x")
    assert code == 1 and err.startswith("<program>:1:6: error: ") and "Traceback" not in err
    assert plain.read_text() == "keep me" and sorted(p.name for p in full.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "x").exists()


def test_a_corpus_that_no_longer_cuts_as_recorded_is_refused(tiny_library, tiny_model, tmp_path, capsys):
    lib = Library.load(tiny_library)
    split = {k: dict(v) if not isinstance(v, (str, int, bool)) else v for k, v in lib.split.items()}
    split["tokens"]["test"] += 1
    changed = tmp_path / "changed.lib"
    lib.replace(split=split).save(changed)
    code, _, err = run(capsys, "library", "edit", changed, "--head", "L0.H1", "--program", "bos",
                       "--out", tmp_path / "x", "--quiet")
    assert code == 2 and "its test split no longer gives what the library recorded" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("version, part, bumped", [
    ("0.2.0", "patch", "0.2.1"), ("0.2.9", "minor", "0.3.0"), ("0.2.3", "major", "1.0.0"),
    ("1.2.0-rc1", "patch", "1.2.0"), ("1.2.0-rc1", "minor", "1.2.0"), ("1.2.3-rc1", "minor", "1.3.0"),
    ("2.0.0-a", "major", "2.0.0"), ("2.1.0-a", "major", "3.0.0"),
])
def test_bump_version(version, part, bumped):
    from headcode.library.format import semver_key

    assert bump_version(version, part) == bumped and semver_key(bumped) > semver_key(version)


def test_bump_version_refuses_what_is_not_a_version_or_a_part():
    with pytest.raises(LibraryError):
        bump_version("1.2", "patch")
    with pytest.raises(LibraryError):
        bump_version("1.2.0", "micro")


# --- the embedded model, end to end -------------------------------------------------------


@pytest.mark.slow
def test_edit_of_the_bundled_library_records_what_score_reports(tmp_path, capsys):
    """One head of the bundled library edited (well under a minute), its recorded test
    IoU equal to what `score --program` reports on the library's test split."""
    from headcode.library import bundled
    from headcode.library.bundled import path

    program = "softmax(3.6*bos + key.word{the: 2.9} + 0.3*log_dist)"  # L3.H6's short program, one weight moved
    out = tmp_path / "smol.lib"
    start = time.monotonic()
    code, stdout, err = run(capsys, "library", "edit", path("smollm2-135m"), "--head", "L3.H6", "--program", program,
                            "--out", out, "--quiet")
    elapsed = time.monotonic() - start
    assert code == 0, err
    assert elapsed < 60, elapsed
    assert "validation kl and ppl_increase measured the old program" in err
    old, new = bundled("smollm2-135m"), Library.load(out)
    entry = new[3, 6][Level.SHORT]
    assert entry.source == "edit" and new.version == bump_version(old.version)
    assert "kl" not in entry.validation and set(entry.test) == {"iou", "iou_all_rows", "jsd"}
    assert new[3, 6][Level.FULL] == old[3, 6][Level.FULL] and new[3, 7] == old[3, 7]
    assert f"~ L3.H6 short.program: {old.program_of(3, 6, Level.SHORT).text} -> {program}" in stdout
    count = old.split["sequences"]["test"]
    scored = score(capsys, program, "L3.H6", "smollm2-135m", "test", count)
    assert entry.test["iou"] == round(scored["iou"], 4)
    assert abs(entry.test["iou"] - old[3, 6][Level.SHORT].test["iou"]) < 0.02  # a small change of weights
