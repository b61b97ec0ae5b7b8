"""Token tables for the rows of a batch, and where each row's real tokens are.

Programs read token features (words, sentences, classes, texts), which come from
character offsets into the text, not from ids alone. A row gets its table in one of
two ways, tried in order:

1. a table the caller registered (`Handle.set_inputs`, `encode`), found by its ids:
   exact, because it was built by `TokenTable.from_text` on the text itself;
2. a table rebuilt from the ids with the tokenizer (`table_from_ids`): the real
   (non-special) ids are decoded to a text, and token k's span is from the end of
   token k-1 to the length of the decoded prefix 0..k (cut to what the full text
   agrees with). A prefix that ends inside a character (a byte piece of byte-level
   BPE, or a `<0xNN>` byte-fallback piece of SentencePiece) decodes to U+FFFD
   there; such a token's span reaches to the end of the character, once a later
   piece completes it, so every piece of a character covers it, as the offsets of
   `from_text` do. Special tokens get the empty span (0, 0), as `from_text` gives
   them. Spans then include a word's leading space (`Ġthe`, `▁the` -> " the"),
   which the token-table rules read the same way as a trimmed offset.

A row's real tokens are where its attention mask is 1; they must be one contiguous
run (left or right padding, not holes), and programs cover exactly that run.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from headcode.dsl.tokens import TokenTable


def real_spans(attention_mask, batch: int, length: int) -> list[tuple[int, int]]:
    """(start, stop) of each row's real tokens; the whole row without a mask."""
    if attention_mask is None:
        return [(0, length)] * batch
    mask = np.asarray(attention_mask.detach().cpu() if hasattr(attention_mask, "detach") else attention_mask)
    if mask.ndim != 2 or mask.shape != (batch, length):
        raise ValueError(f"attention mask of shape {mask.shape} does not match the batch ({batch}, {length})")
    spans = []
    for b, row in enumerate(mask != 0):
        where = np.flatnonzero(row)
        if len(where) == 0:
            raise ValueError(f"batch row {b} has no real tokens (its attention mask is all 0)")
        start, stop = int(where[0]), int(where[-1]) + 1
        if stop - start != len(where):
            raise ValueError(f"batch row {b}: the attention mask has holes; only left or right padding is supported")
        spans.append((start, stop))
    return spans


def table_from_ids(tokenizer, ids) -> TokenTable:
    """A row's table rebuilt from its ids by decoding (see the module docstring)."""
    ids = [int(i) for i in ids]
    special = set(getattr(tokenizer, "all_special_ids", ()) or ())
    real = [i for i in ids if i not in special]
    decode = functools.partial(tokenizer.decode, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    text = decode(real)
    offsets, end, k = [], 0, 0
    open_pieces: list[int] = []  # tokens whose prefix ends inside a character not yet complete
    for i in ids:
        if i in special:
            offsets.append((0, 0))
            continue
        k += 1
        prefix = decode(real[:k])
        agreed = len(os.path.commonprefix([prefix, text]))
        new_end = max(end, agreed)
        if new_end > end:  # the characters up to new_end are complete: so are the open pieces
            for j in open_pieces:
                offsets[j] = (offsets[j][0], new_end)
            open_pieces.clear()
        if prefix[agreed:] and set(prefix[agreed:]) == {"\ufffd"}:
            open_pieces.append(len(offsets))
        offsets.append((end, new_end))
        end = new_end
    return TokenTable.from_offsets(text, ids, offsets)
