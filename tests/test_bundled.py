"""The library shipped for the embedded model: present, loadable with every check,
complete, and reproducible (its recorded test scores come back on its test split)."""

from __future__ import annotations

import numpy as np
import pytest

from headcode.library import Level, available, bundled

NAME = "smollm2-135m"


def test_bundled_library_ships_and_loads():
    assert NAME in available()
    lib = bundled(NAME)
    assert lib.model.name == NAME
    assert (lib.model.num_layers, lib.model.num_heads) == (30, 9)
    assert len(lib) == 270 and len(lib.programs) <= 270 * len(lib.levels)
    for key in lib:
        for level, entry in lib[key].levels.items():
            assert {"iou", "iou_all_rows"} <= set(entry.test)
            # What `attach(fraction=...)` ranks by: measured on validation text.
            assert {"iou", "kl", "ppl_increase"} <= set(entry.validation)
            assert entry.validation["kl"] >= 0
    assert lib.levels == (Level.SHORT, Level.FULL) and all(set(lib[k].levels) == set(Level) for k in lib)
    greedy = np.mean([lib[k].baselines["greedy_mixture"] for k in lib])
    full = [lib[k][Level.FULL].test["iou"] for k in lib]
    assert np.mean(full) > greedy


def test_bundled_short_level_is_readable():
    """The short level is what a person reads: short programs of few shapes, still
    clearly better than the greedy mixture of named patterns (issue 10's targets)."""
    from headcode.dsl.shape import shape_id

    lib = bundled(NAME)
    short = [lib.program_of(*k, Level.SHORT) for k in lib]
    chars = [p.chars for p in short]
    assert np.median(chars) <= 200 and max(chars) <= 500
    assert len({shape_id(p) for p in short}) <= 60
    assert max((len(t.entries) for p in short for t in _tables(p.ir)), default=0) <= 8
    greedy = np.mean([lib[k].baselines["greedy_mixture"] for k in lib])
    assert np.mean([lib[k][Level.SHORT].test["iou"] for k in lib]) >= greedy + 0.05


@pytest.mark.slow
def test_bundled_scores_reproduce_on_its_test_split():
    from headcode.library import identity_of
    from headcode.loaders.corpora import SplitSpec
    from headcode.loaders.models import load_model
    from headcode.synth import data
    from headcode.synth.scoring import score_heads

    lib = bundled(NAME)
    loaded = load_model(NAME)
    assert lib.check_model(identity_of(NAME, loaded.model, loaded.tokenizer)) == []
    split = data.cut(loaded, SplitSpec.from_record(lib.split), names=("test",))["test"]
    assert len(split) == lib.split["sequences"]["test"] and split.tokens == lib.split["tokens"]["test"]
    data.record(loaded, split, progress=False)
    heads = [(0, 0), (5, 3), (12, 7), (29, 8)]
    for level in lib.levels:
        scores = score_heads(split, {h: lib.program_of(*h, level) for h in heads})
        for h in heads:
            assert scores[h].iou == pytest.approx(lib[h][level].test["iou"], abs=2e-3)


def _tables(node):
    """Every word table inside an IR tree (the IR is frozen dataclasses with tuple children)."""
    import dataclasses

    from headcode.dsl import ir

    if isinstance(node, ir.WordTable):
        yield node
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _tables(getattr(node, f.name))
    elif isinstance(node, tuple):
        for child in node:
            yield from _tables(child)
