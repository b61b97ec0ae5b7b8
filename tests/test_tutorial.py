"""docs/tutorial.md, run as it is written: every `$ headcode ...` line of its console
blocks, in order, in a fresh directory, on the embedded model and the bundled library.
Each must succeed and the files it names must appear; the figures printed in the
tutorial are not compared (they were measured once and may move by rounding)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from headcode.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BUNDLED = "headcode/library/data/smollm2-135m"


def commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    joined, out = "", []
    for line in lines:  # a command may continue over lines ending in a backslash
        if joined or line.startswith("$ headcode "):
            joined += line.rstrip("\\").removeprefix("$ ") + " "
            if not line.endswith("\\"):
                out.append(joined.strip())
                joined = ""
    return out


def test_the_tutorial_has_commands():
    found = commands()
    assert len(found) >= 6 and {c.split()[1] for c in found} >= {"library", "capture", "fit", "replace"}


@pytest.mark.slow
def test_the_tutorial_runs_as_written(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    for command in commands():
        argv = [str(root / a) if a == BUNDLED else a for a in shlex.split(command)[1:]]
        assert main([*argv, *(["--quiet"] if argv[0] in ("capture", "fit", "replace") else [])]) == 0, command
        if "--out" in argv:
            assert (tmp_path / argv[argv.index("--out") + 1]).exists(), command
