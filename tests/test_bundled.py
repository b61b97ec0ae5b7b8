"""The library shipped for the embedded model: present, loadable with every check,
complete, and reproducible (its recorded test scores come back on its test split)."""

from __future__ import annotations

import numpy as np
import pytest

from headcode.library import available, bundled

NAME = "smollm2-135m"


def test_bundled_library_ships_and_loads():
    assert NAME in available()
    lib = bundled(NAME)
    assert lib.model.name == NAME
    assert (lib.model.num_layers, lib.model.num_heads) == (30, 9)
    assert len(lib) == 270 and len(lib.programs) <= 270
    for key in lib:
        entry = lib[key]
        assert {"iou", "iou_all_rows"} <= set(entry.test)
        # What `attach(fraction=...)` ranks by: measured on validation text.
        assert {"iou", "kl", "ppl_increase"} <= set(entry.validation)
        assert entry.validation["kl"] >= 0
    assert np.mean([lib[k].test["iou"] for k in lib]) > np.mean([lib[k].weights["baseline_greedy_mixture"]
                                                                for k in lib])


@pytest.mark.slow
def test_bundled_scores_reproduce_on_its_test_split():
    from headcode.library import identity_of
    from headcode.loaders.corpora import open_corpus
    from headcode.loaders.models import load_model
    from headcode.synth import data, pipeline
    from headcode.synth.evaluate import score_heads

    lib = bundled(NAME)
    loaded = load_model(NAME)
    assert lib.check_model(identity_of(NAME, loaded.model, loaded.tokenizer)) == []
    corpus = lib.corpus
    split = pipeline.cut(loaded, open_corpus(corpus["name"]), {"test": corpus["sequences"]["test"]},
                         max_len=corpus["max_len"], shape=corpus["shape"], one_per_line=corpus["one_per_line"],
                         seed=corpus["split_seed"])["test"]
    assert len(split) == corpus["sequences"]["test"]
    data.capture(loaded, split, progress=False)
    heads = [(0, 0), (5, 3), (12, 7), (29, 8)]
    scores = score_heads(split, {h: lib.program_of(*h) for h in heads})
    for h in heads:
        assert scores[h]["iou"] == pytest.approx(lib[h].test["iou"], abs=2e-3)
