"""The hand-editing commands: check, fmt, canon, show (and the demo)."""

from __future__ import annotations

import contextlib

import json
import re
import subprocess
import sys

import pytest

from headcode.cli import main

GOOD = "# Two heads.\n\nprevious = prev(1)\nsink = 0.3*self + 0.7*bos\n"
BAD = "ok = bos\nbad1 = prevv(1)\nbad2 = last(pnct) else bos\nbad3 = 0.5*bos - 0.5*self\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_accepts_valid_files(tmp_path, capsys):
    f = tmp_path / "good.hc"
    f.write_text(GOOD)
    code, out, err = run(capsys, "check", str(f))
    assert code == 0 and err == "" and "2 program(s) ok" in out


def test_check_reports_every_problem_with_position_line_and_caret(tmp_path, capsys):
    f = tmp_path / "bad.hc"
    f.write_text(BAD)
    code, out, err = run(capsys, "check", str(f))
    assert code == 1
    lines = err.splitlines()
    errors = [ln for ln in lines if re.match(rf"{re.escape(str(f))}:\d+:\d+: error: ", ln)]
    assert [e.split(":")[1:3] for e in errors] == [["2", "8"], ["3", "13"], ["4", "18"]]
    assert "did you mean 'prev'" in errors[0]
    first = lines.index(errors[0])
    assert lines[first + 1].strip() == "bad1 = prevv(1)"
    assert lines[first + 2].index("^") == lines[first + 1].index("prevv")


def test_check_many_files_exit_one_if_any_is_bad(tmp_path, capsys):
    good, bad = tmp_path / "g.hc", tmp_path / "b.hc"
    good.write_text(GOOD)
    bad.write_text(BAD)
    code, out, err = run(capsys, "check", str(good), str(bad))
    assert code == 1 and "g.hc: 2 program(s) ok" in out and "b.hc:2:8" in err


def test_unreadable_and_non_utf8_files_give_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path / "missing.hc"))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "missing.hc" in err
    f = tmp_path / "latin1.hc"
    f.write_bytes(b"a = bos # caf\xe9\n")
    code, _, err = run(capsys, "check", str(f))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not UTF-8" in err


def test_fmt_prints_canonical_and_check_mode(tmp_path, capsys):
    f = tmp_path / "p.hc"
    f.write_text(GOOD)
    code, out, _ = run(capsys, "fmt", str(f))
    assert code == 0
    assert out == "# Two heads.\n\nprevious = prev(1) else bos\n\nsink = 0.7*bos + 0.3*self\n"
    code, _, err = run(capsys, "fmt", "--check", str(f))
    assert code == 1 and "not in canonical form" in err
    code, _, _ = run(capsys, "fmt", "--write", str(f))
    assert code == 0 and f.read_text() == out
    code, _, _ = run(capsys, "fmt", "--check", str(f))
    assert code == 0


def test_canon_text_and_json(capsys):
    code, out, _ = run(capsys, "canon", "0.3*bos + 0.7*prev(1)")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "0.7*prev(1) + 0.3*bos" and re.fullmatch(r"id: [0-9a-f]{16}", lines[1])
    assert lines[2] == "size: 2 atoms, 21 characters"
    code, out, _ = run(capsys, "canon", "--json", "0.7*prev(1) + 0.3*bos")
    data = json.loads(out)
    assert data["canonical"] == "0.7*prev(1) + 0.3*bos" and data["id"] == lines[1][4:]
    assert (data["size"], data["chars"]) == (2, 21)


def test_canon_bad_program_is_an_error_not_a_traceback(capsys):
    code, out, err = run(capsys, "canon", "0.5*bos +")
    assert code == 1 and out == "" and "<program>:1:10: error: unexpected end of input" in err
    assert "Traceback" not in err


def test_show_prints_a_heatmap_and_writes_a_png(tmp_path, capsys):
    png = tmp_path / "m.png"
    code, out, _ = run(capsys, "show", "last(punct) else bos", "--text", "Tom ran. Then he sat, happy.", "--png", str(png))
    assert code == 0 and "last(punct) else bos" in out and "ran" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_show_rejects_empty_text(capsys):
    code, _, err = run(capsys, "show", "bos", "--text", "   ")
    assert code != 0 and "empty" in err and len(err.strip().splitlines()) == 1


def test_entry_point_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "headcode", "canon", "--json", "bos"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and json.loads(done.stdout)["canonical"] == "bos"


def test_demo_shows_the_hand_written_programs(capsys):
    code, out, _ = run(capsys, "demo", "--hand")
    assert code == 0 and "latest_punct = last(punct) else bos" in out and out.count("[id ") >= 8


@pytest.mark.slow
def test_demo_explains_heads_of_the_embedded_model(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--heads", "L0.H0,L3.H1", "--out", str(tmp_path / "demo.lib"),
                       "--report", str(tmp_path / "demo-report"), "--quiet")
    assert code == 0 and "wrote" in out and (tmp_path / "demo.lib" / "manifest.json").is_file()
    figures = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert set(figures) == {"short", "full", "baselines"} and 0 < figures["short"] <= 1
    assert re.search(r"the library shipped for all 270 heads .*short mean iou 0\.\d{3}, full mean iou 0\.\d{3}", out)
    curve = re.findall(r"(\d+)% of heads \( *(\d+)\): perplexity +([\d.]+) \(([+-][\d.]+)%\)", out)
    assert [(int(f), int(h)) for f, h, _, _ in curve] == [(0, 0), (25, 68), (50, 135)] and float(curve[0][3]) == 0
    assert (tmp_path / "demo-report" / "index.html").is_file()
    assert len(list((tmp_path / "demo-report" / "heads").glob("*.html"))) == 270
    assert f"open {(tmp_path / 'demo-report' / 'index.html').as_uri()}" in out


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_program_files_must_be_regular_files(tmp_path, capsys, command):
    # `fmt /dev/zero` used to read until memory ran out; a FIFO would block forever.
    code, out, err = run(capsys, command, "/dev/zero")
    assert code != 0 and "not a regular file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "plain").write_text("x")
    for argv in (["show", "bos", "--text", "a b", "--png", str(tmp_path)],  # a directory, not a file
                 ["show", "bos", "--text", "a b", "--png", str(tmp_path / "plain" / "x.png")],  # under a file
                 ["predict", "--library", str(tmp_path), "--text", "hi", "--out", str(tmp_path)],
                 ["capture", "--out", str(tmp_path / "plain" / "cap")],
                 ["explain", "--out", str(tmp_path / "plain" / "lib")]):
        code, out, err = run(capsys, *argv)
        assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert "not a directory" in err or "is a directory" in err, (argv, err)


def _tiny_library(path):
    from headcode import dsl
    from headcode.library import Level, Library, ModelIdentity, fingerprint

    split = {"corpus": "stories", "shape": "packed", "max_len": 64, "one_per_line": False, "seed": 7,
             "counts": {"train": 20, "validation": 4, "test": 4},
             "sequences": {"train": 20, "validation": 4, "test": 3},
             "tokens": {"train": 900, "validation": 180, "test": 130}}
    model = ModelIdentity("tiny", "LlamaForCausalLM", 3, 4, 2, fingerprint({"layers": 3}, {"a": 0, "b": 1}))
    lib = Library(model=model, split=split, created="2025-01-31T12:00:00Z")
    lib.with_head(0, 1, Level.FULL, dsl.Program.of("prev(1)"), source="score").save(path)
    return path


def test_a_missing_input_exits_2_from_every_command(tmp_path, capsys):
    """One convention (README, "Exit status"): a missing input file or directory is 2,
    as a usage error is; 1 means programs that were read and do not check."""
    good = tmp_path / "good.hc"
    good.write_text(GOOD)
    lib = str(_tiny_library(tmp_path / "lib"))
    missing = str(tmp_path / "missing")
    new = str(tmp_path / "new")
    commands = [
        ["check", missing], ["check", str(good), missing],
        ["fmt", missing], ["fmt", "--check", missing], ["fmt", "--write", missing],
        ["heads", missing],
        ["capture", "--corpus", missing, "--out", new], ["capture", "--model", missing, "--out", new],
        ["explain", "--corpus", missing, "--out", new, "--quiet"],
        ["score", "--library", missing], ["score", "--library", lib, "--corpus", missing],
        ["score", "--program", "bos", "--heads", "L0.H1", "--corpus", missing],
        ["library", "edit", missing, "--head", "L0.H1", "--program", "bos", "--out", new],
        ["predict", "--library", missing, "--text", "hi", "--out", new + ".npz"],
        ["predict", "--library", lib, "--model", missing, "--text", "hi", "--out", new + ".npz"],
        ["replace", "--library", missing], ["replace", "--library", lib, "--corpus", missing],
        ["replace", "--library", lib, "--model", missing],
        ["library", "inspect", missing], ["library", "verify", missing], ["library", "stats", missing],
        ["library", "verify", lib, "--model", missing],
        ["library", "diff", missing, lib], ["library", "diff", lib, missing],
        ["library", "merge", lib, missing, "--out", new],
    ]
    for argv in commands:
        code, _, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err, (argv, code, err)
        assert len(err.strip().splitlines()) == 1 and missing in err, (argv, err)
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.npz").exists()
    # What `check` says of programs it could read is 1, of a file it could not, 2.
    bad = tmp_path / "bad.hc"
    bad.write_text(BAD)
    assert run(capsys, "check", str(bad))[0] == 1
    assert run(capsys, "check", str(bad), missing)[0] == 2
    assert run(capsys, "fmt", str(bad))[0] == 1
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse's 2
        main(["fmt"])
    assert usage.value.code == 2


@pytest.mark.parametrize("argv", [
    ["explain", "--proposer", "x" * 100_000, "--out", "o.lib"],  # argparse quotes the bad choice
    ["check", "--width", "y" * 100_000],
    ["canon", "bos + " * 20_000 + "zz"],
])
def test_error_messages_do_not_echo_unbounded_input(capsys, argv):
    with pytest.raises(SystemExit) if argv[0] != "canon" else contextlib.nullcontext():
        main(argv)
    err = capsys.readouterr().err
    assert 0 < len(err) < 2_000 and "Traceback" not in err
