"""Head profiles on hand-made attention whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from headcode import cli
from headcode.dsl.tokens import TokenTable
from headcode.synth.capture import Capture, CaptureWriter
from headcode.synth.profiles import grid, profiles

WORDS = ["the", "dog", "ran", ".", "the", "cat", "saw", "the", "dog", ","]
N = len(WORDS)


def patterns(table: TokenTable) -> np.ndarray:
    """[1 layer, 6 heads, n, n]: first, previous, self, latest punctuation, same token, uniform."""
    n = len(table)
    a = np.zeros((1, 6, n, n))
    i = np.arange(n)
    a[0, 0, :, 0] = 1
    a[0, 1, i, np.maximum(i - 1, 0)] = 1
    a[0, 2, i, i] = 1
    punct = [w in ".," for w in table.surfaces]
    for q in range(n):
        latest = max((k for k in range(q + 1) if punct[k]), default=q)
        a[0, 3, q, latest] = 1
        same = [k for k in range(q) if table.ids[k] == table.ids[q]]
        for k in same or [q]:
            a[0, 4, q, k] = 1 / len(same or [q])
        a[0, 5, q, : q + 1] = 1 / (q + 1)
    return a


@pytest.fixture
def stored(tmp_path):
    writer = CaptureWriter(tmp_path / "cap", {"model": "hand-made"})
    for words in (WORDS, WORDS[:4]):
        table = TokenTable.from_words(words)
        writer.add(" ".join(words), "train", 0, table, patterns(table))
    return Capture.open(writer.commit())


def test_profiles_of_known_patterns(stored):
    by_head = {p.head: p for p in profiles(stored)}
    assert by_head[0].first_mass == 1 and by_head[0].entropy == 0
    assert by_head[1].prev_mass == 1 and by_head[1].first_mass == pytest.approx(2 / (N - 1 + 3))
    assert by_head[2].self_mass == 1 and by_head[2].prev_mass == 0
    assert by_head[3].last_punct_mass == 1
    assert by_head[4].same_token_mass == 1
    # Uniform rows: entropy log2(i + 1), pooled over rows 1..n-1 of both sequences
    # (stored as float16, hence the tolerance).
    rows = list(range(1, N)) + list(range(1, 4))
    assert by_head[5].entropy == pytest.approx(np.mean([math.log2(i + 1) for i in rows]), rel=1e-3)
    assert by_head[5].first_mass == pytest.approx(np.mean([1 / (i + 1) for i in rows]), rel=1e-3)
    # Induction (keys right after the query's token): "the"@4 -> dog@1; "the"@7 -> dog@1,
    # cat@5; "dog"@8 -> ran@2. No other row of either sequence has such a key.
    assert by_head[5].induction_mass == pytest.approx(np.mean([1 / 5, 2 / 8, 1 / 9]), rel=1e-3)


def test_rows_with_no_such_key_are_left_out(tmp_path):
    writer = CaptureWriter(tmp_path / "cap", {"model": "hand-made"})
    table = TokenTable.from_words(["a", "b", "c"])
    writer.add("a b c", "train", 0, table, patterns(table))
    (p,) = [q for q in profiles(Capture.open(writer.commit())) if q.head == 0]
    assert p.same_token_mass is None and p.last_punct_mass is None and p.induction_mass is None
    assert p.first_mass == 1


def test_grid_names_the_dominant_pattern(stored):
    lines = grid(profiles(stored)).splitlines()
    assert lines[0].split() == ["layer", "h0", "h1", "h2", "h3", "h4", "h5"]
    cells = lines[1].split()
    assert cells[0] == "0"
    assert cells[1:9] == ["F", "99", "P", "99", "S", "99", ",", "99"]


def test_heads_cli(stored, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("headcode.cli.capture",))
    assert cli.main(["heads", str(stored.path), "--json"]) == 0
    heads = json.loads(capsys.readouterr().out)
    assert [(h["layer"], h["head"]) for h in heads] == [(0, k) for k in range(6)]
    assert heads[2]["self_mass"] == 1.0
    assert cli.main(["heads", str(stored.path), "--split", "test"]) == 2
    assert "no captured sequences in split 'test'" in capsys.readouterr().err
