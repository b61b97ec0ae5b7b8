"""What the model loses when heads are replaced: perplexity and multiple-choice QA.

Perplexity is token-weighted: exp of the summed next-token loss over every
predicted token of every sequence, divided by the number of those tokens (so long
sequences weigh more, and the figure does not depend on how rows are batched).

QA: each choice is appended to the question's prompt (after one space) and scored
by the sum of its tokens' log-probabilities; the accuracy takes the best sum, the
length-normalised accuracy the best mean per token. Answer tokens are the tokens of
the joined text that hold any character of the answer (from the tokenizer's offsets).

`curve` runs both at each fraction of heads replaced; fraction 0 is the untouched
model (nothing attached), and heads are chosen by `attach` from the library's
validation figures, never from the evaluation text. `head_effects` measures each
head's cost when replaced alone, on validation text: the perplexity increase and
the KL divergence of the predictions; recorded as `validation["ppl_increase"]` and
`validation["kl"]` (`with_effects`), they rank heads by what the model actually
loses instead of by IoU. `estimate.head_effects_estimate` estimates the KL of every
head at once, far faster; `with_effects` records its `kl_estimate` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from headcode.dsl.tokens import TokenTable
from headcode.library import Level
from headcode.replace.attach import attach, choose_heads
from headcode.replace.batch import by_length, encode, forward


@dataclass(frozen=True)
class Question:
    prompt: str  # everything before the answer
    choices: tuple[str, ...]
    answer: int  # index of the right choice


def perplexity(model, tables: Sequence[TokenTable], handle=None, batch_size: int = 8) -> tuple[float, int]:
    """(token-weighted perplexity, tokens predicted) of the model on the sequences."""
    total, count = 0.0, 0
    for batch in by_length(tables, batch_size):
        part, tokens = _loss_sum(forward(model, batch, handle), batch)
        total, count = total + part, count + tokens
    if count == 0:
        raise ValueError("no tokens to predict: every sequence has a single token")
    return math.exp(total / count), count


def _token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Loss of predicting token i+1 at position i: [b, n-1]."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


def qa_accuracy(model, tokenizer, questions: Sequence[Question], handle=None, *, add_special_tokens: bool = False,
                batch_size: int = 16, max_len: int = 512) -> dict:
    """{"n", "accuracy", "accuracy_norm"} of the questions, scored by log-probability."""
    items = []  # (question index, table, answer positions)
    for q, question in enumerate(questions):
        for choice in question.choices:
            items.append((q, *_joined(tokenizer, question.prompt, choice, add_special_tokens, max_len)))
    sums = [[0.0] * len(q.choices) for q in questions]
    means = [[0.0] * len(q.choices) for q in questions]
    slot = [0] * len(questions)
    for k in range(0, len(items), batch_size):
        chunk = items[k:k + batch_size]
        batch = encode([table for _, table, _ in chunk])
        loss = _token_losses(forward(model, batch, handle), batch.input_ids)
        for row, (q, _, positions) in enumerate(chunk):
            logp = -loss[row, [p - 1 for p in positions]].double()
            sums[q][slot[q]] = float(logp.sum())
            means[q][slot[q]] = float(logp.mean())
            slot[q] += 1
    best = [max(range(len(s)), key=s.__getitem__) for s in sums]
    best_norm = [max(range(len(m)), key=m.__getitem__) for m in means]
    n = len(questions)
    return {
        "n": n,
        "accuracy": sum(b == q.answer for b, q in zip(best, questions)) / n if n else float("nan"),
        "accuracy_norm": sum(b == q.answer for b, q in zip(best_norm, questions)) / n if n else float("nan"),
    }


def _joined(tokenizer, prompt: str, choice: str, add_special_tokens: bool, max_len: int):
    """The table of prompt + " " + choice and the positions of the answer's tokens."""
    text = f"{prompt} {choice.strip()}"
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=add_special_tokens)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(ids) > max_len:  # keep the answer: cut the prompt's start
        ids, offsets = ids[-max_len:], offsets[-max_len:]
    positions = [i for i, (s, e) in enumerate(offsets) if e > len(prompt) + 1 and e > s and i > 0]
    if not positions:
        raise ValueError(f"the answer {choice!r} has no tokens of its own")
    return TokenTable.from_offsets(text, ids, offsets), positions


def curve(model, tokenizer, library, tables: Sequence[TokenTable], fractions: Iterable[float], *,
          level: Level = Level.FULL, qa: dict[str, Sequence[Question]] | None = None,
          add_special_tokens: bool = False, batch_size: int = 8, force: bool = False, rank_by: str | None = None,
          progress: Callable[[str], None] | None = None) -> list[dict]:
    """Perplexity (and QA accuracies) at each fraction of heads replaced (their `level`
    programs), in increasing order; fraction 0 (the baseline of every `increase`,
    nothing attached) is always included."""
    points, baseline = [], None
    total = int(model.config.num_hidden_layers) * int(model.config.num_attention_heads)
    for fraction in sorted({0.0, *map(float, fractions)}):
        handle = None
        heads = choose_heads(library, total, fraction=fraction, rank_by=rank_by, level=level)
        if heads:
            handle = attach(model, library, heads=heads, level=level, tokenizer=tokenizer, force=force)
        try:
            heads = list(handle.heads) if handle else []
            if progress:
                progress(f"fraction {fraction:g}: {len(heads)} heads replaced")
            ppl, tokens = perplexity(model, tables, handle, batch_size)
            point = {"fraction": fraction, "heads_replaced": len(heads), "perplexity": ppl, "tokens": tokens,
                     "heads": [list(h) for h in heads]}
            for name, questions in (qa or {}).items():
                point.setdefault("qa", {})[name] = qa_accuracy(
                    model, tokenizer, questions, handle, add_special_tokens=add_special_tokens)
        finally:
            if handle:
                handle.detach()
        if fraction == 0:
            baseline = ppl
        point["increase"] = ppl / baseline - 1 if baseline else None
        points.append(point)
    return points


def head_effects(model, tokenizer, library, tables: Sequence[TokenTable], *, level: Level = Level.FULL,
                 batch_size: int = 8, force: bool = False,
                 progress: bool = False) -> dict[tuple[int, int], dict[str, float]]:
    """What replacing each library head alone (its `level` program) costs the model on `tables` (pass
    validation text: the figures rank heads for evaluation on the test split):
    {"ppl_increase": perplexity ratio - 1, "kl": mean KL(clean || replaced) in nats
    per predicted token}.

    The KL is the figure to rank by: the perplexity change of one head is mostly
    first-order noise of either sign on a small text (heads "improving" the model by
    chance), while the KL says how far the head's program moves the predictions at
    all, and small moves are what stay small when many heads are replaced together.

    Replacing a head of layer L changes nothing before L, so each batch runs clean
    once with every decoder layer's output recorded, and each head's run replays
    layers 0..L-1 from that record (`_replayed`): the same numbers as a whole
    forward, in about half the time.
    """
    import sys

    from tqdm import tqdm

    layers = decoder_layers(model)
    batches = by_length(tables, batch_size)
    records, clean, base_total, count = [], [], 0.0, 0
    for batch in batches:
        with _recorded(layers) as outputs:
            logits = forward(model, batch, None)
        records.append(outputs)
        clean.append(_predictions(logits, batch))
        total, tokens = _loss_sum(logits, batch)
        base_total, count = base_total + total, count + tokens
    if count == 0:
        raise ValueError("no tokens to predict: every sequence has a single token")
    effects = {}
    keys = [key for key in library if level in library[key].levels]
    bar = tqdm(keys, desc=f"measure heads ({level.value})", unit="head", file=sys.stderr, disable=not progress)
    for key in bar:
        total, kl = 0.0, 0.0
        with attach(model, library, heads=[key], level=level, tokenizer=tokenizer, force=force) as handle:
            for batch, outputs, before in zip(batches, records, clean):
                with _replayed(layers[:key[0]], outputs):
                    logits = forward(model, batch, handle)
                total += _loss_sum(logits, batch)[0]
                after = _predictions(logits, batch)
                kl += float((before.exp() * (before - after)).sum(dtype=torch.float64))
        effects[key] = {"ppl_increase": math.exp((total - base_total) / count) - 1, "kl": kl / count}
        bar.set_postfix_str(f"L{key[0]}.H{key[1]} kl {effects[key]['kl']:.4f}")
    return effects


def _predictions(logits: torch.Tensor, batch) -> torch.Tensor:
    """Log-probabilities [tokens, vocab] at every position that predicts a real token."""
    real = (batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).bool()
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)[real]


def _loss_sum(logits: torch.Tensor, batch) -> tuple[float, int]:
    """(summed next-token loss, tokens predicted) of a right-padded batch."""
    loss = _token_losses(logits, batch.input_ids)
    real = (batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).bool()
    return float(loss[real].double().sum()), int(real.sum())


def decoder_layers(model) -> list:
    """Each layer's whole block (the parent of its attention module), by layer."""
    from headcode.replace.attach import attention_modules

    names = {id(m): name for name, m in model.named_modules()}
    return [model.get_submodule(names[id(m)].rpartition(".")[0]) for m in attention_modules(model)]


class _recorded:
    """Record every layer's output during one forward (a list, filled in order)."""

    def __init__(self, layers: list):
        self.layers, self.outputs, self.hooks = layers, [], []

    def __enter__(self) -> list:
        for layer in self.layers:
            self.hooks.append(layer.register_forward_hook(lambda _m, _a, out: self.outputs.append(out)))
        return self.outputs

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()


class _replayed:
    """Layers that return their recorded outputs instead of computing them.

    Only for layers before every replaced head, on the batch that was recorded:
    their inputs are the same, so their outputs are too.
    """

    def __init__(self, layers: list, outputs: list):
        self.layers, self.outputs = layers, outputs

    def __enter__(self) -> None:
        for layer, out in zip(self.layers, self.outputs):
            layer.forward = lambda *args, _out=out, **kwargs: _out

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            del layer.forward  # the instance attribute; the class's forward shows again


def with_effects(library, effects: dict[tuple[int, int], dict[str, float]], level: Level = Level.FULL):
    """The library with each measured head's figures (`head_effects` of its `level`
    program) recorded in that level's validation scores."""
    import dataclasses

    heads = []
    for key in library:
        h = library[key]
        if key in effects:
            entry = h[level]
            measured = {k: round(v, 6) for k, v in effects[key].items()}
            h = h.with_level(level, dataclasses.replace(entry, validation={**entry.validation, **measured}))
        heads.append(h)
    return library.replace(heads=heads)
