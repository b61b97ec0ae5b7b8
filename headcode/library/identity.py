"""Which model a library explains: a name, the attention shape, and a fingerprint.

The fingerprint is computed from plain dicts (a model config and a tokenizer
vocabulary), so this module needs neither torch nor transformers:

    >>> fp = fingerprint({"num_hidden_layers": 2}, {"a": 0, "b": 1})
    >>> fp.startswith("sha256:") and len(fp) == 7 + 64
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

# Config keys that say where or with what a model was loaded, not what it is.
VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "transformers_version", "_commit_hash", "_attn_implementation"})


@dataclass(frozen=True)
class ModelIdentity:
    name: str  # as the user names it, e.g. "smollm2-135m"
    architecture: str  # e.g. "LlamaForCausalLM"
    num_layers: int
    num_heads: int  # query heads per layer
    num_kv_heads: int  # key/value heads per layer (GQA); equals num_heads without GQA
    fingerprint: str  # "sha256:" + 64 hex digits, see `fingerprint`

    def to_json(self) -> dict:
        return asdict(self)

    def differences(self, other: ModelIdentity) -> list[tuple[str, object, object]]:
        """The fields that differ, as (field, self's value, other's value)."""
        mine, theirs = asdict(self), asdict(other)
        return [(k, mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]]


def fingerprint(config: dict, vocab: dict[str, int]) -> str:
    """SHA-256 over the canonical JSON of the config (volatile keys dropped) and the
    sorted (token, id) items of the vocabulary.

    Canonical JSON: sorted keys, separators "," and ":", non-ASCII kept as UTF-8;
    values JSON cannot hold (dtypes, tuples of them) are written with `str`.
    """
    kept = {k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS}
    payload = {"config": kept, "vocab": sorted((str(t), int(i)) for t, i in vocab.items())}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def identity_of(name: str, model, tokenizer) -> ModelIdentity:
    """The identity of a loaded transformers model and its tokenizer (duck-typed:
    `model.config.to_dict()`, `tokenizer.get_vocab()`; nothing is imported)."""
    config = model.config
    heads = int(config.num_attention_heads)
    return ModelIdentity(
        name=name,
        architecture=(getattr(config, "architectures", None) or [type(model).__name__])[0],
        num_layers=int(config.num_hidden_layers),
        num_heads=heads,
        num_kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
        fingerprint=fingerprint(config.to_dict(), tokenizer.get_vocab()),
    )
