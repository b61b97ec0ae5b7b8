"""Heads replaced by their programs inside the model, and what the model loses.

    from headcode.replace import attach, run
    with attach(model, library, fraction=0.25, tokenizer=tok) as handle:
        logits, batch = run(model, tok, ["Tom saw a dog."], handle)

Modules: `attention` (the function registered with transformers as "headcode"),
`attach` (choosing heads, the `Handle`), `tables` (token tables for batch rows),
`batch` (padded batches and forwards), `measure` (perplexity and QA, and each
head's cost measured alone), `estimate` (that cost estimated for every head at
once), `qa` (the question sets). See docs/replace.md.
"""

from headcode.replace.attach import Handle, attach, attention_modules, choose_heads
from headcode.replace.batch import Batch, encode, forward, run
from headcode.replace.tables import table_from_ids

__all__ = ["Batch", "Handle", "attach", "attention_modules", "choose_heads", "encode", "forward", "run",
           "table_from_ids"]
