"""headcode.loaders.models: local paths (tiny GPT-2 and Llama), hub names, the embedded model."""

from __future__ import annotations

import math
import time

import pytest
import torch

from headcode.errors import UserError
from headcode.loaders import models
from headcode.loaders.models import EMBEDDED, build_tiny_model, load_model


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request, tmp_path_factory):
    path = build_tiny_model(request.param, tmp_path_factory.mktemp(request.param))
    return request.param, path


def test_tiny_models_load_by_local_path(tiny):
    arch, path = tiny
    loaded = load_model(str(path))
    assert loaded.model.config.model_type == arch
    assert loaded.model.config._attn_implementation == "eager"
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.tokenizer.is_fast
    assert loaded.n_layers == 2
    assert (loaded.n_heads, loaded.n_kv_heads) == ((2, 2) if arch == "gpt2" else (4, 2))
    # Llama tokenizers prepend BOS (so sequences keep it); GPT-2's adds nothing.
    assert loaded.add_special_tokens is (arch == "llama")
    ids = loaded.tokenizer("Tom saw a dog.", add_special_tokens=loaded.add_special_tokens)["input_ids"]
    with torch.no_grad():
        out = loaded.model(torch.tensor([ids]), output_attentions=True)
    assert len(out.attentions) == 2
    att = out.attentions[0][0]
    assert att.shape == (loaded.n_heads, len(ids), len(ids))
    assert torch.allclose(att.sum(-1), torch.ones(att.shape[:2]))
    assert torch.all(att.triu(1) == 0)  # causal


def test_missing_local_path_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="no such model") as err:
        load_model(str(tmp_path / "nothing-here"))
    assert "\n" not in str(err.value) and EMBEDDED in str(err.value)


def test_local_path_that_is_not_a_model_is_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(UserError, match="cannot load a model from it") as err:
        load_model(str(tmp_path))
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_unreachable_hub_name_is_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        load_model("gpt2-surely-not-in-any-local-cache")
    assert time.perf_counter() - start < 30
    message = str(err.value)
    assert message == (
        "cannot reach model 'gpt2-surely-not-in-any-local-cache' (offline or unknown name); "
        "use 'smollm2-135m' or a local path"
    )


def test_conversion_is_atomic(tmp_path, monkeypatch):
    """A failed save leaves no cache behind; a good one leaves exactly the model."""
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path / "cache"))
    source = build_tiny_model("llama", tmp_path / "src")
    entry = models.EmbeddedGGUF("headcode", "headcode", "0", "tiny.gguf")
    monkeypatch.setattr(models.EmbeddedGGUF, "gguf_path", lambda self, scratch: source / "tiny.gguf")
    real_load = models._load
    monkeypatch.setattr(models, "_load", lambda path, local, gguf_file=None, progress=False: real_load(path, local))

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    from transformers import PreTrainedModel

    with monkeypatch.context() as m:
        m.setattr(PreTrainedModel, "save_pretrained", broken_save)
        with pytest.raises(OSError, match="disk full"):
            models.converted_path(entry)
    parent = tmp_path / "cache" / "models"

    def listing() -> list[str]:  # what is there besides the save lock (`fileio.NewDirectory`), which stays
        return sorted(p.name for p in parent.iterdir() if not (p.name.startswith(".") and p.name.endswith(".lock")))

    assert listing() == []  # no half-written cache, no temp dir

    target = models.converted_path(entry)
    assert listing() == [target.name]
    assert (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()
    assert models.converted_path(entry) == target  # second call: no conversion


@pytest.mark.slow
def test_embedded_model_converts_once_and_reloads_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path))
    first = load_model(EMBEDDED)
    start = time.perf_counter()
    second = load_model(EMBEDDED)
    assert time.perf_counter() - start <= 3.0
    config = second.model.config
    assert (config.model_type, second.n_layers, second.n_heads, second.n_kv_heads) == ("llama", 30, 9, 3)
    assert not hasattr(config, "quantization_config")
    # The embedded tokenizer adds no BOS: position 0 is the first word.
    assert second.add_special_tokens is False
    text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun."
    ids = torch.tensor([second.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        loss_first = first.model(ids, labels=ids).loss
        loss_second = second.model(ids, labels=ids).loss
    # Same weights before and after the round trip through safetensors, and sensible ones.
    assert torch.allclose(loss_first, loss_second)
    assert math.exp(loss_second.item()) < 20
