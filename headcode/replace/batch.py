"""Padded batches of sequences, with their token tables, and one forward over them.

    batch = encode(tables)                       # or encode(texts, tokenizer=tok)
    logits = forward(model, batch, handle)       # handle: from attach, or None

Rows are padded on the right by default (left with padding_side="left"); the
attention mask marks real tokens and the position ids count real tokens only, so
a row's logits at its real positions do not depend on the padding or on the other
rows. The tables go to the handle (`set_inputs`), so replaced heads read exact
features instead of ones rebuilt from ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from headcode.dsl.tokens import TokenTable, by_length as groups_by_length


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # int64[b, n]
    attention_mask: torch.Tensor  # int64[b, n], 1 at real tokens
    position_ids: torch.Tensor  # int64[b, n]
    tables: tuple  # one TokenTable per row
    starts: tuple[int, ...]  # where each row's real tokens begin


def encode(items: Sequence, tokenizer=None, *, add_special_tokens: bool = False, max_len: int | None = None,
           padding_side: str = "right", pad_id: int | None = None) -> Batch:
    """A batch of token tables, or of texts (tokenized with `tokenizer`, with offsets)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    tables = []
    for item in items:
        if isinstance(item, TokenTable):
            tables.append(item)
        elif tokenizer is None:
            raise ValueError("texts need a tokenizer")
        else:
            tables.append(TokenTable.from_text(tokenizer, item, max_len=max_len,
                                               add_special_tokens=add_special_tokens))
    if not tables or any(len(t) == 0 for t in tables):
        raise ValueError("a batch needs at least one sequence, each of at least one token")
    if pad_id is None:
        pad_id = _pad_id(tokenizer)
    width = max(len(t) for t in tables)
    ids = torch.full((len(tables), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(tables), width), dtype=torch.long)
    starts = []
    for b, t in enumerate(tables):
        start = 0 if padding_side == "right" else width - len(t)
        ids[b, start:start + len(t)] = torch.from_numpy(t.ids.copy())
        mask[b, start:start + len(t)] = 1
        starts.append(start)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, positions, tuple(tables), tuple(starts))


def by_length(tables: Sequence[TokenTable], size: int) -> list[Batch]:
    """The tables in batches of `size` (`dsl.tokens.by_length`: longest first), what
    every measurement over many sequences runs on."""
    return [encode([tables[k] for k in group]) for group in groups_by_length(tables, size)]


def forward(model, batch: Batch, handle=None) -> torch.Tensor:
    """Logits [b, n, vocab] of one batch (no gradients, no cache)."""
    if handle is not None:
        handle.set_inputs(batch.tables)
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids, use_cache=False).logits


def run(model, tokenizer, texts: Sequence[str], handle=None, **options) -> tuple[torch.Tensor, Batch]:
    """Tokenize texts with offsets, pad, and run: (logits, batch). `options` go to `encode`."""
    batch = encode(texts, tokenizer, **options)
    return forward(model, batch, handle), batch


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0
