"""`--model gemma3-270m` through every command that takes a model (slow: the real
Gemma 3 270M, converted once into the user's cache by `make install`'s packages)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from headcode.cli import main
from headcode.loaders.models import GEMMA, REGISTRY

pytestmark = pytest.mark.slow
HEADS = "L0.H0,L5.H1"  # a sliding layer and a full one


@pytest.fixture(scope="module", autouse=True)
def installed():
    if importlib.util.find_spec(REGISTRY[GEMMA].package) is None:
        pytest.skip("the Gemma packages are not installed (make install)")


def test_gemma_through_the_commands(tmp_path, capsys):
    small = ["--max-seqs", "4", "--validation-seqs", "2", "--test-seqs", "2", "--max-len", "48", "--quiet"]
    lib = tmp_path / "gemma.lib"
    assert main(["explain", "--model", GEMMA, "--heads", HEADS, *small, "--json", "--out", str(lib)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {(h["layer"], h["head"]) for h in report["heads"]} == {(0, 0), (5, 1)}
    manifest = json.loads((lib / "manifest.json").read_text())
    assert manifest["model"]["name"] == GEMMA and manifest["model"]["num_kv_heads"] == 1

    assert main(["score", "--library", str(lib), "--split", "test", "--max-seqs", "2", "--json", "--quiet"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert len(scores["heads"]) == 2 and all(0 < h["iou"] <= 1 for h in scores["heads"])

    out = tmp_path / "pred.npz"
    assert main(["predict", "--library", str(lib), "--text", "Tom ran home. He was happy!", "--out", str(out)]) == 0
    with np.load(out) as saved:
        assert saved["input_ids"][0] == 2  # <bos>
        assert np.allclose(saved["L5.H1"].sum(-1), 1.0, atol=1e-6)

    capture = tmp_path / "cap"  # 30 sequences: the first stories of the shipped text fall in every split
    assert main(["capture", "--model", GEMMA, "--max-seqs", "30", "--max-len", "32", "--out", str(capture),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["heads", str(capture), "--json"]) == 0
    profiles = json.loads(capsys.readouterr().out)
    assert len(profiles) == 18 * 4

    assert main(["fit", "softmax(?*bos + ?*key.punct)", "--head", "L0.H0", "--capture", str(capture),
                 "--json", "--quiet"]) == 0
    capsys.readouterr()

    # 0.02 of 72 heads is one: the library's best by validation IoU.
    assert main(["replace", "--library", str(lib), "--fractions", "0,0.02", "--qa", "none",
                 "--max-seqs", "2", "--json", "--quiet"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["fraction"] for p in points] == [0, 0.02] and 2 < points[0]["perplexity"] < 60
