"""The attention function registered with transformers under the name "headcode".

A model whose `config._attn_implementation` is "headcode" calls `attention` in
every attention layer (GPT-2, the Llama family and Gemma 3 all dispatch through
`ALL_ATTENTION_FUNCTIONS`). It is eager attention, written out the way
transformers' eager functions do it (the module's own `scaling`, Gemma's
`query_pre_attn_scalar ** -0.5`; logit soft-capping when the module passes
`softcap`, as Gemma 2 does), so heads left alone give the same numbers; for the
heads chosen in that layer the softmax probabilities are replaced by the
program's matrix before the value product. The mask builder for "headcode" is the
eager one (an additive float mask), registered alongside; on a sliding-window
layer it hides the keys outside the window, and the replacement keeps to the
keys it allows (`Handle._substitute`).

Which heads, and their matrices, come from the `Handle` attached to the model: the
module -> (handle, layer) map below is the only state, and a module that is not in
it (never attached, or detached) gets plain eager attention. `OBSERVED` is the
same kind of map for observers (headcode.replace.estimate): each sees a layer's
probabilities and values and may add to the heads' outputs (a gradient probe).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

NAME = "headcode"

# attention module -> (handle, layer); weak, so a dropped model leaves nothing behind.
ATTACHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# attention module -> (observer, layer); observer(layer, weights, value, mask, output) -> output,
# where output is the per-head value product [b, heads, n, d] before the heads are concatenated.
OBSERVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """[b, kv, s, d] -> [b, kv*groups, s, d]: query head h reads key/value head h // groups
    (the same expansion as transformers' Llama `repeat_kv`)."""
    if groups == 1:
        return states
    b, kv, s, d = states.shape
    return states[:, :, None, :, :].expand(b, kv, groups, s, d).reshape(b, kv * groups, s, d)


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """Eager attention with the attached heads' probabilities replaced by programs."""
    if key.shape[1] == 0 or query.shape[1] % key.shape[1]:
        raise ValueError(f"{query.shape[1]} query heads cannot share {key.shape[1]} key/value heads")
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    if scaling is None:  # GPT-2's default
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if softcap is not None:
        weights = torch.tanh(weights / softcap) * softcap
    mask = None if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]]
    if mask is not None:
        weights = weights + mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    entry = ATTACHED.get(module)
    if entry is not None:
        handle, layer = entry
        weights = handle._substitute(layer, weights, mask)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value)
    seen = OBSERVED.get(module)
    if seen is not None:
        observer, layer = seen
        output = observer(layer, weights, value, mask, output)
    return output.transpose(1, 2).contiguous(), weights


def register() -> None:
    """Make "headcode" a valid attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, eager_mask)
