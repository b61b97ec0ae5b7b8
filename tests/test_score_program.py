"""`headcode score --program`: a hand-written program scored against chosen heads, with
the figures and baselines of `score --library` (the tiny model and library of conftest)."""

from __future__ import annotations

import json

import pytest

from headcode import dsl
from headcode.cli import main
from headcode.library import Level, Library


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> bool:
    return "Traceback" not in err and len(err.strip().splitlines()) == 1


PROGRAMS = {(0, 1): "prev(1) else bos", (1, 2): "0.6*bos + 0.4*prev(1)"}


@pytest.fixture(scope="module")
def edited_library(tiny_library, tmp_path_factory):
    """The tiny library with two short programs that differ from the fitted ones."""
    lib = Library.load(tiny_library)
    for (layer, head), text in PROGRAMS.items():
        lib = lib.with_head(layer, head, Level.SHORT, dsl.Program.of(text), source="edit")
    out = tmp_path_factory.mktemp("edited") / "two.lib"
    lib.save(out)
    return out


def test_a_program_scores_as_the_library_holding_it(edited_library, tiny_model, tmp_path, capsys):
    heads = "L0.H1,L1.H2"
    code, out, err = run(capsys, "score", "--library", edited_library, "--model", tiny_model, "--heads", heads,
                         "--json", "--quiet")
    assert code == 0, err
    by_library = json.loads(out)
    # One file naming a program per head, and the same program as text for one head.
    file = tmp_path / "heads.hc"
    file.write_text("".join(f"# head {l}.{h}\nL{l}.H{h} = {text}\n\n" for (l, h), text in PROGRAMS.items()))
    code, out, err = run(capsys, "score", "--program", file, "--heads", heads, "--model", tiny_model, "--json",
                         "--quiet")
    assert code == 0, err
    by_program = json.loads(out)
    assert by_program["given"] == f"each head's program in {file}"
    for key in ("text", "sequences", "tokens", "mean_iou", "mean_iou_all_rows", "mean_jsd", "baselines"):
        assert by_program[key] == by_library[key], key
    assert by_library["text"] == "the test split of stories" and by_library["sequences"] >= 4
    for mine, theirs in zip(by_program["heads"], by_library["heads"], strict=True):
        assert mine.pop("origin") == f"L{mine['layer']}.H{mine['head']} of {file}"
        assert mine == theirs
        assert set(mine["baselines"]) == {"bos", "uniform"}
    code, out, err = run(capsys, "score", "--program", PROGRAMS[0, 1], "--heads", "L0.H1", "--model", tiny_model,
                         "--json", "--quiet")
    alone = json.loads(out)
    assert code == 0 and alone["given"] == "the given program" and alone["heads"][0]["origin"] is None
    assert {k: v for k, v in alone["heads"][0].items() if k != "origin"} == by_library["heads"][0]
    # The whole library scored at once agrees with the heads scored alone (the model is
    # run only up to the last head's layer when fewer layers are wanted).
    code, out, _ = run(capsys, "score", "--library", edited_library, "--model", tiny_model, "--json", "--quiet")
    every = {(h["layer"], h["head"]): h for h in json.loads(out)["heads"]}
    assert every[0, 1] == by_library["heads"][0] and len(every) == 8


def test_the_table_names_the_program_and_its_baselines(tiny_model, tmp_path, capsys):
    file = tmp_path / "two.hc"
    file.write_text("look_back = prev(1) else bos\n\nsink = bos\n")
    code, out, err = run(capsys, "score", "--program", f"{file}:sink", "--heads", "L1.H0", "--model", tiny_model,
                         "--quiet", "--split", "validation", "--max-seqs", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"1 head (program sink of {file}) on 3 sequences (")
    assert lines[0].endswith(" tokens) of the validation split of stories")
    assert lines[1].split() == ["head", "iou", "all", "rows", "jsd", "bos", "unif", "program"]
    row = lines[2].split()
    assert row[0] == "L1.H0" and row[-1] == "bos" and row[1] == row[4]  # bos scores as the bos baseline
    assert lines[3].startswith("mean iou ")


@pytest.mark.parametrize("program, where", [
    ("prev(1) else", "<program>:1:13: error: "),
    ("softmax(?*bos + ?*key.punct)", "<program>:1:9: error: "),  # a sketch: fill its holes first
])
def test_a_program_that_does_not_check_is_shown_with_its_position(tiny_model, capsys, program, where):
    code, out, err = run(capsys, "score", "--program", program, "--heads", "L0.H1", "--model", tiny_model)
    assert code == 1 and err.startswith(where) and "^" in err and "Traceback" not in err and not out


def test_a_bad_program_in_a_file_is_shown_with_its_file_line_and_column(tiny_model, tmp_path, capsys):
    file = tmp_path / "bad.hc"
    file.write_text("# fine\ngood = bos\n\nbroken = softmax(2*bos +)\n")
    code, _, err = run(capsys, "score", "--program", file, "--heads", "L0.H1", "--model", tiny_model)
    assert code == 1 and err.startswith(f"{file}:4:") and "Traceback" not in err
    bare = tmp_path / "bare.hc"
    bare.write_text("# one program, no name\n0.5*bos +\n  0.5*prev(\n")
    code, _, err = run(capsys, "score", "--program", bare, "--heads", "L0.H1", "--model", tiny_model)
    assert code == 1 and err.startswith(f"{bare}:") and "Traceback" not in err


def test_a_file_of_one_bare_program_is_read(tiny_model, tmp_path, capsys):
    bare = tmp_path / "bare.hc"
    bare.write_text("# looks back, or sinks\n0.5*bos +\n  0.5*prev(1)\n")
    code, out, err = run(capsys, "score", "--program", bare, "--heads", "L0.H1", "--model", tiny_model, "--json",
                         "--quiet", "--max-seqs", "2")
    report = json.loads(out)
    assert code == 0 and report["given"] == f"the program of {bare}"
    assert report["heads"][0]["program"] == "0.5*bos + 0.5*prev(1)"


def test_refusals_are_one_line(tiny_model, tmp_path, capsys):
    two = tmp_path / "two.hc"
    two.write_text("a = bos\n\nb = prev(1)\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [
        (["--program", "bos", "--heads", "L2.H0"], "head L2.H0 is outside the model"),
        (["--program", "bos", "--heads", "L0.H4"], "outside the model"),
        (["--program", "bos", "--heads", "head3"], "is not a head like"),
        (["--program", "bos"], "--program needs --heads"),
        (["--program", two, "--heads", "L0.H1"], f"name one as {two}:NAME"),
        (["--program", f"{two}:c", "--heads", "L0.H1"], "no program named 'c' (it defines a, b)"),
        (["--program", tmp_path / "missing.hc", "--heads", "L0.H1"], "no such program file"),
        (["--program", "bos", "--heads", "L0.H1", "--force"], "--force is for --library"),
        (["--program", "bos", "--heads", "L0.H1", "--corpus", tmp_path / "none.txt"], "cannot read corpus"),
        (["--program", "  ", "--heads", "L0.H1"], "--program is empty"),
        (["--program", "bos", "--heads", "L0.H1", "--corpus", empty], "no sequences of at least 2 tokens"),
        (["--program", "bos", "--heads", "L0.H1", "--corpus", empty, "--split", "test"], "no test sequences"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, "score", "--model", tiny_model, *argv)
        assert code == 2 and message in err and one_line_error(err), (argv, err)
    with pytest.raises(SystemExit) as usage:  # one or the other, not both
        main(["score", "--program", "bos", "--library", str(tmp_path), "--heads", "L0.H1"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        main(["score", "--heads", "L0.H1"])
