"""A second-order estimate of what replacing each head alone costs, for every head at once.

Replacing head h of layer l by its program changes only that head's output (its
slice of the input of the layer's output projection), by Δ_h = (A'_h − A_h) V_h:
A' the program's matrix, A the model's probabilities, V_h the values the head reads
(its key/value group's, under GQA). Linearising the rest of the model in Δ, the KL
of the predictions is a Fisher quadratic form,

    KL(p ‖ p') ≈ ½ Σ_t E_{y_t ~ p_t} [(∇ log p_t(y_t) · Δ)²],

summed over predicted positions t. One sample y_t of the clean model's own
prediction at every position, summed over a sequence before squaring, estimates it
without bias (the cross terms vanish in expectation, since E_y ∇ log p(y) = 0);
and one backward pass gives the gradient with respect to every head's output of
every layer together. So the cost is one forward and `samples` backward passes,
whatever the number of heads, where the exact measurement (`measure.head_effects`)
costs about half a forward per head.

What it misses is what linearisation misses: a program far from its head moves
the predictions by more than a quadratic says, and effects saturate. The estimate
is validated against the exact KL on the embedded model by `benchmarks/effects.py`
(rank correlation; docs/replace.md), and recorded under its own figure name,
`kl_estimate`, so a reader never takes it for a measurement.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence

import torch

from headcode.dsl.tokens import TokenTable
from headcode.errors import UserError
from headcode.heads import Head
from headcode.library import Level
from headcode.replace import attention as attn
from headcode.replace.attach import (
    MatricesFn, check_model, programs_fn, set_implementation, attention_modules, within_mask,
)
from headcode.replace.batch import by_length

SAMPLES = 8  # sampled backward passes per batch (benchmarks/effects.py validates the estimate at it)


class Method(enum.Enum):
    """How `replace --measure-heads` finds each head's cost."""

    ESTIMATE = "estimate"  # this module: every head at once, recorded as kl_estimate
    EXACT = "exact"  # measure.head_effects: each head run alone, recorded as kl and ppl_increase


def head_effects_estimate(model, tokenizer, library, tables: Sequence[TokenTable], *, level: Level = Level.FULL,
                          samples: int = SAMPLES, seed: int = 0, batch_size: int = 8, force: bool = False,
                          heads: Sequence[Head] | None = None, matrices_fn: MatricesFn | None = None,
                          progress: bool = False) -> dict[Head, dict[str, float]]:
    """{"kl_estimate": estimated mean KL(clean || head replaced) in nats per predicted
    token} of each library head's `level` program on `tables` (validation text), from
    one forward and `samples` backward passes per batch (see the module docstring).
    The same seed, text and library give the same figures.

    `heads` (default: every head the library explains at `level`) and `matrices_fn`
    (instead of the programs, as in `attach`; tests use it for oracles, and then
    `library` may be None) choose what is estimated."""
    from tqdm import tqdm

    if samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}")
    if heads is None:
        if library is None:
            raise UserError("give a library or the heads to estimate")
        heads = [key for key in library if level in library[key].levels]
    keys = sorted(Head(*key) for key in heads)
    if not keys:
        return {}
    if library is not None:
        check_model(library, model, tokenizer, force)
    modules = attention_modules(model)
    if any(m in attn.ATTACHED or m in attn.OBSERVED for m in modules):
        raise UserError("this model has heads replaced or observed; detach that first")
    probe = _Probe(keys, matrices_fn or programs_fn(library, keys, level))
    batches = by_length(tables, batch_size)
    generator = torch.Generator().manual_seed(seed)
    squares = torch.zeros(len(keys), dtype=torch.float64)
    count = 0
    attn.register()
    previous = model.config._attn_implementation
    set_implementation(model, attn.NAME)
    for layer in probe.layers:
        attn.OBSERVED[modules[layer]] = (probe, layer)
    bar = tqdm(total=len(batches) * samples, desc=f"estimate heads ({level.value})", unit="pass",
               file=sys.stderr, disable=not progress)
    try:
        for batch in batches:
            probe.start(batch)
            with torch.enable_grad():
                logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False).logits
            real = (batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).bool()
            count += int(real.sum())
            probs = torch.softmax(logits[:, :-1].detach().float(), dim=-1)[real]  # [tokens, vocab]
            for _ in range(samples):
                drawn = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
                # The gradient of log p(y) with respect to the logits: onehot(y) - p.
                seed_grad = -probs
                seed_grad[torch.arange(len(drawn)), drawn] += 1
                cotangent = torch.zeros(logits.shape, dtype=logits.dtype)
                cotangent[:, :-1][real] = seed_grad.to(logits.dtype)
                grads = torch.autograd.grad(logits, probe.inputs(), grad_outputs=cotangent, retain_graph=True)
                squares += probe.squares(grads)
                bar.update()
            probe.stop()
            del logits
    finally:
        bar.close()
        for layer in probe.layers:
            attn.OBSERVED.pop(modules[layer], None)
        set_implementation(model, previous)
    if count == 0:
        raise ValueError("no tokens to predict: every sequence has a single token")
    estimate = 0.5 * squares / samples / count
    return {key: {"kl_estimate": float(v)} for key, v in zip(keys, estimate)}


class _Probe:
    """The observer of every layer with a library head (headcode.replace.attention.OBSERVED):
    during the forward it keeps each head's change Δ = (A' − A) V and adds a zero
    tensor to the heads' outputs, whose gradient is the gradient with respect to them."""

    def __init__(self, keys: list[Head], programs):
        self.keys, self.programs = keys, programs
        self.layers: dict[int, tuple[list[int], list[int]]] = {}  # layer -> (heads, indices into keys)
        for k, (layer, head) in enumerate(keys):
            heads, index = self.layers.setdefault(layer, ([], []))
            heads.append(head)
            index.append(k)
        self.batch = None

    def start(self, batch) -> None:
        self.batch, self.matrices, self.rows = batch, None, None
        self.deltas: dict[int, torch.Tensor] = {}
        self.probes: dict[int, torch.Tensor] = {}

    def stop(self) -> None:
        self.batch = self.matrices = self.rows = None
        self.deltas, self.probes = {}, {}

    def _programs(self, n: int, dtype) -> None:
        """Every library head's program on every row of the batch [b, heads, n, n] (right padding)."""
        b = len(self.batch.tables)
        self.matrices = torch.zeros((b, len(self.keys), n, n), dtype=dtype)
        self.rows = self.batch.attention_mask.bool()
        for row, table in enumerate(self.batch.tables):
            start, m = self.batch.starts[row], len(table)
            self.matrices[row, :, start:start + m, start:start + m] = torch.from_numpy(
                self.programs(table, self.keys)).to(dtype)

    def __call__(self, layer: int, weights: torch.Tensor, value: torch.Tensor, mask, output: torch.Tensor):
        if self.batch is None:
            raise RuntimeError("an observed forward outside head_effects_estimate")
        if self.matrices is None:
            self._programs(weights.shape[-1], weights.dtype)
        heads, index = self.layers[layer]
        programs = self.matrices[:, index].to(weights.device)
        if mask is not None:
            programs = within_mask(programs, mask)
        before = weights[:, heads].detach()
        after = torch.where(self.rows[:, None, :, None].to(weights.device), programs, before)
        self.deltas[layer] = torch.matmul(after - before, value[:, heads].detach())
        probe = torch.zeros_like(output, requires_grad=True)
        self.probes[layer] = probe
        return output + probe

    def inputs(self) -> list[torch.Tensor]:
        return [self.probes[layer] for layer in self.layers]

    def squares(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ over sequences of (g · Δ_h)² for every head, in `keys` order."""
        out = torch.zeros(len(self.keys), dtype=torch.float64)
        for grad, (layer, (heads, index)) in zip(grads, self.layers.items()):
            dot = (grad[:, heads] * self.deltas[layer]).sum(dim=(2, 3), dtype=torch.float64)  # [b, heads]
            out[index] = (dot ** 2).sum(0)
        return out
