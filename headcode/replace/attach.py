"""Attach a library's programs to a model in place of some of its heads.

    with attach(model, lib, fraction=0.25, tokenizer=tok) as handle:
        handle.set_inputs(tables)          # optional: exact tables for the next inputs
        logits = model(input_ids=ids, attention_mask=mask).logits
    # detached: the model computes exactly what it computed before

`attach` switches the model to the "headcode" attention implementation
(headcode.replace.attention) and remembers the previous one, which `detach` puts
back; a forward pre-hook on the base model records each forward's input ids and
attention mask, from which every row gets its token table (headcode.replace.tables)
and its real-token span. Program matrices are computed once per forward, for every
chosen head of every layer together, at the first layer that needs them.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from headcode.errors import UserError
from headcode.heads import Head, as_head, outside
from headcode.library import FIGURES, Better, Level
from headcode.replace import attention as attn
from headcode.replace.tables import real_spans, table_from_ids

# (table, heads) -> float[len(heads), n, n]: causal, row-stochastic matrices.
MatricesFn = Callable[[object, Sequence[Head]], np.ndarray]
_REBUILT_MAX = 1024  # tables rebuilt from ids kept at most (a forward needs one per row)


def attach(model, library=None, heads: Iterable[Head] | None = None, fraction: float | None = None, *,
           level: Level = Level.FULL, tokenizer=None, matrices_fn: MatricesFn | None = None, force: bool = False,
           rank_by: str | None = None) -> Handle:
    """Replace heads of `model` by their programs in `library` until `detach`.

    Give exactly one of `heads` (a list of (layer, head)) or `fraction` (of all the
    model's heads, chosen by the library's recorded validation figure `rank_by` at
    `level`, best first, ties by (layer, head)). `level` says which of each head's
    programs runs: the full one (the most faithful, the default) or the short one.
    `tokenizer` lets rows without a registered table get one rebuilt from their
    ids, and completes the model check (the fingerprint covers the vocabulary);
    without it, the one saved in the model's own directory is used if there is one,
    else only the architecture and shape are checked and every input needs
    `set_inputs`. `library` may be a Library or the path of one. A model the library
    was not fitted to is refused unless `force`. `matrices_fn` replaces the programs
    (tests use it for oracles); `library` is then needed only for `fraction`.
    """
    if not (hasattr(model, "config") and callable(getattr(model, "modules", None))):
        raise UserError(f"attach takes a Hugging Face transformers model, not {type(model).__name__}")
    if isinstance(library, (str, os.PathLike)):
        from headcode.library import Library

        library = Library.load(library)
    elif library is not None and not hasattr(library, "program_of"):
        raise UserError(f"library must be a headcode Library or the path of one, not {type(library).__name__}")
    if tokenizer is None:
        tokenizer = _own_tokenizer(model)
    attn.register()
    modules = attention_modules(model)
    config = model.config
    n_layers, n_heads = int(config.num_hidden_layers), int(config.num_attention_heads)
    if not isinstance(level, Level):
        raise UserError(f"level must be a headcode.library.Level (short or full), not {level!r:.40}")
    warnings: list[str] = []
    if library is not None:
        warnings = check_model(library, model, tokenizer, force)
    elif matrices_fn is None:
        raise UserError("attach needs a library (or matrices_fn)")
    chosen = choose_heads(library, n_layers * n_heads, heads, fraction, rank_by, level)
    if not chosen:
        raise UserError("no head to replace: give at least one head, or a fraction that names one")
    for key in chosen:
        if (why := outside(key, n_layers, n_heads)) is not None:
            raise UserError(why)
        if matrices_fn is None and (key not in library or level not in library[key].levels):
            raise UserError(f"head {Head(*key)} has no {level.value} program in the library")
    if any(m in attn.ATTACHED for m in modules):
        raise UserError("this model already has heads replaced; detach that handle first")
    trusted = matrices_fn is None  # compiled programs are causal by construction
    if trusted:
        matrices_fn = programs_fn(library, sorted(chosen), level)
    return Handle(model, modules, chosen, matrices_fn, tokenizer, warnings, check_causal=not trusted)


def choose_heads(library, total: int, heads: Iterable[Head] | None = None, fraction: float | None = None,
                 rank_by: str | None = None, level: Level = Level.FULL) -> list[Head]:
    """The heads to replace, in the order chosen (see `attach`). With a fraction, heads
    are ranked by `validation[rank_by]` of their `level` entry, best first by the
    figure's direction (`headcode.library.FIGURES`); heads without that figure come
    last. `rank_by` None means `default_rank(library, level)`."""
    if (heads is None) == (fraction is None):
        raise UserError("give either heads or fraction to replace, not both" if heads is not None
                        else "give the heads or the fraction of heads to replace")
    if heads is not None:
        chosen = [as_head(key) for key in heads]
        if len(set(chosen)) != len(chosen):
            raise UserError("a head is listed twice")
        return chosen
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise UserError(f"fraction must be a number from 0 to 1, got {fraction!r}")
    if library is None:
        raise UserError("choosing heads by fraction needs a library (its validation IoU ranks them)")
    count = math.floor(fraction * total + 0.5)  # round half up: 25% of 270 heads is 68
    rank_by = rank_by or default_rank(library, level)
    if rank_by not in FIGURES:
        raise UserError(f"cannot rank heads by {rank_by!r:.40}: a library records {', '.join(FIGURES)}")
    sign = 1 if FIGURES[rank_by] is Better.LOWER else -1
    ranked_heads = [key for key in library if level in library[key].levels]
    figure = {key: library[key][level].validation.get(rank_by) for key in ranked_heads}
    if count and all(v is None for v in figure.values()):
        raise UserError(f"the library records no validation {rank_by!r} of {level.value} programs to rank heads by")
    ranked = sorted(ranked_heads, key=lambda key: (math.inf if figure[key] is None else sign * figure[key], key))
    if count > len(ranked):
        raise UserError(f"fraction {fraction:g} needs {count} of the model's {total} heads, "
                        f"but the library explains only {len(ranked)} at the {level.value} level")
    return ranked[:count]


def default_rank(library, level: Level = Level.FULL) -> str:
    """The cost of replacing each head alone where the library records it: `kl`
    measured (`measure.head_effects`), else `kl_estimate` (`estimate.head_effects_estimate`),
    else `ppl_increase`; IoU is a poor guide to what a head's program costs the model.
    Else validation IoU."""
    for figure in ("kl", "kl_estimate", "ppl_increase"):
        if any(level in h.levels and figure in h[level].validation for h in library.values()):
            return figure
    return "iou"


def attention_modules(model) -> list:
    """The self-attention module of each layer, indexed by layer."""
    found: dict[int, object] = {}
    for module in model.modules():
        layer = getattr(module, "layer_idx", None)
        if (type(module).__name__.endswith("Attention") and isinstance(layer, int)
                and not getattr(module, "is_cross_attention", False)):
            if layer in found:
                raise UserError(f"{type(model).__name__}: two attention modules claim layer {layer}")
            found[layer] = module
    layers = int(model.config.num_hidden_layers)
    if sorted(found) != list(range(layers)):
        raise UserError(f"{type(model).__name__}: cannot find one attention module per layer "
                        f"({len(found)} found for {layers} layers)")
    return [found[k] for k in range(layers)]


def _own_tokenizer(model):
    """The tokenizer saved beside the model's weights (`config.name_or_path`, local
    files only), or None: a model loaded from a directory usually has one."""
    where = getattr(model.config, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    if not where or not os.path.isdir(where):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError):
        return None


def check_model(library, model, tokenizer, force: bool) -> list[str]:
    """The library's warnings about `model` (refused unless `force` when it is another model)."""
    from headcode.library import ModelIdentity, identity_of

    if tokenizer is not None:
        identity = identity_of(library.model.name, model, tokenizer)
    else:  # no vocabulary, no fingerprint: compare what the model alone says
        mine = identity_of(library.model.name, model, _NoVocab())
        identity = ModelIdentity(**{**mine.to_json(), "fingerprint": library.model.fingerprint})
    return library.check_model(identity, force=force)


class _NoVocab:
    def get_vocab(self) -> dict:
        return {}


def programs_fn(library, heads: list[Head], level: Level) -> MatricesFn:
    """The matrices of the `level` programs of `heads` on a token table, compiled once."""
    from headcode.compiler import ProgramBatch

    batch = ProgramBatch([library.program_of(*key, level) for key in heads])
    order = {key: k for k, key in enumerate(heads)}

    def evaluate(table, wanted: Sequence[Head]) -> np.ndarray:
        out = batch.evaluate(table)
        return out if list(wanted) == heads else out[[order[key] for key in wanted]]

    return evaluate


class Handle:
    """Heads of one model replaced by programs; `detach` (or leaving `with`) undoes it."""

    def __init__(self, model, modules: list, heads: list[Head], matrices_fn: MatricesFn, tokenizer,
                 warnings: list[str], check_causal: bool = True):
        self.model = model
        self.heads = tuple(heads)  # in the order chosen (best first with a fraction)
        self.warnings = tuple(warnings)
        self.tokenizer = tokenizer
        self._matrices_fn = matrices_fn
        self._check_causal = check_causal
        self._order = sorted(self.heads)  # row k of a forward's matrices is head _order[k]
        self._index = {key: k for k, key in enumerate(self._order)}
        self._by_layer: dict[int, list[int]] = {}
        for layer, head in self._order:
            self._by_layer.setdefault(layer, []).append(head)
        self._given: dict[tuple[int, ...], object] = {}  # ids -> table, from set_inputs
        self._rebuilt: dict[tuple[int, ...], object] = {}  # ids -> table, from the tokenizer
        self._ordered: list = []  # set_inputs tables in order, for forwards given embeddings
        self._inputs = (None, None)  # this forward's (input_ids, attention_mask)
        self._cache = None  # this forward's ((batch, n, dtype, device), matrices, real rows)
        self._modules = [modules[layer] for layer in self._by_layer]
        self._previous = model.config._attn_implementation
        set_implementation(model, attn.NAME)
        base = getattr(model, "base_model", model)
        self._hook = base.register_forward_pre_hook(self._before_forward, with_kwargs=True)
        for layer in self._by_layer:
            attn.ATTACHED[modules[layer]] = (self, layer)
        self.attached = True

    # --- lifetime ---

    def detach(self) -> None:
        """Put the model back exactly as it was (safe to call twice)."""
        if not self.attached:
            return
        for module in self._modules:
            attn.ATTACHED.pop(module, None)
        self._hook.remove()
        set_implementation(self.model, self._previous)
        self._cache = None
        self.attached = False

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"<headcode.replace.Handle {state}: {len(self.heads)} heads>"

    # --- inputs ---

    def set_inputs(self, tables: Sequence) -> None:
        """Token tables for the coming forwards (one per row, in batch order): a row
        whose real ids equal a table's ids uses that table instead of a rebuilt one."""
        self._ordered = list(tables)
        self._given = {tuple(int(i) for i in t.ids): t for t in self._ordered}

    def _before_forward(self, module, args, kwargs):
        # Bound to the signature: callers may pass input_ids or the mask by position.
        given = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        self._inputs = (given.get("input_ids"), given.get("attention_mask"))
        self._cache = None

    def _table(self, row: int, ids) -> object:
        if ids is None:  # the forward got embeddings: only tables given in order can serve
            if row >= len(self._ordered):
                raise UserError("a forward without input_ids needs its token tables: call set_inputs(tables)")
            return self._ordered[row]
        key = tuple(int(i) for i in ids)
        table = self._given.get(key) or self._rebuilt.get(key)
        if table is None:
            if self.tokenizer is None:
                raise UserError("no token table for this input: pass tokenizer= to attach, or call set_inputs(tables)")
            if len(self._rebuilt) >= _REBUILT_MAX:
                self._rebuilt.clear()
            table = self._rebuilt[key] = table_from_ids(self.tokenizer, key)
        return table

    # --- the replacement (called by headcode.replace.attention) ---

    def _matrices(self, batch: int, n: int, dtype, device):
        """This forward's program matrices [batch, heads, n, n] and real rows [batch, n]."""
        shape = (batch, n, dtype, device)
        if self._cache is not None and self._cache[0] == shape:
            return self._cache[1], self._cache[2]
        ids, mask = self._inputs
        if ids is not None and tuple(ids.shape) != (batch, n):
            raise ValueError(f"input ids of shape {tuple(ids.shape)} do not match the attention ({batch}, {n})")
        spans = real_spans(mask, batch, n)
        # Built straight in the attention's dtype: float64 would double the memory traffic.
        full = torch.zeros((batch, len(self._order), n, n), dtype=dtype)
        rows = torch.zeros((batch, n), dtype=torch.bool)
        host_ids = ids.detach().cpu().numpy() if ids is not None else None
        for b, (start, stop) in enumerate(spans):
            table = self._table(b, None if host_ids is None else host_ids[b, start:stop])
            if len(table) != stop - start:
                raise UserError(f"batch row {b}: its token table has {len(table)} tokens "
                                f"but the row has {stop - start} real tokens")
            m = np.asarray(self._matrices_fn(table, self._order), dtype=np.float64)
            if m.shape != (len(self._order), len(table), len(table)):
                raise ValueError(f"matrices of shape {m.shape}, expected {(len(self._order), len(table), len(table))}")
            if self._check_causal and np.triu(m, 1).any():  # a surrogate reading the future would leak it
                raise ValueError("a replacement matrix attends to later tokens (not causal)")
            full[b, :, start:stop, start:stop] = torch.from_numpy(m)
            rows[b, start:stop] = True
        tensors = (full.to(device), rows.to(device))
        self._cache = (shape, *tensors)
        return tensors

    def _substitute(self, layer: int, weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        heads = self._by_layer.get(layer)
        if not heads:
            return weights
        batch, _, q, k = weights.shape
        if q != k:
            raise ValueError("replaced heads need whole-sequence forwards (no past_key_values / incremental decoding)")
        full, rows = self._matrices(batch, q, weights.dtype, weights.device)
        programs = full[:, [self._index[(layer, h)] for h in heads]]
        if mask is not None:
            programs = within_mask(programs, mask)
        if weights.requires_grad:  # softmax's backward needs its output intact
            weights = weights.clone()
        # Padded query rows keep their (unused) eager values; real rows take the program.
        weights[:, heads] = torch.where(rows[:, None, :, None], programs, weights[:, heads])
        return weights


def within_mask(programs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Program matrices [b, h, n, n] kept to the keys the layer's mask allows.

    A program is causal over the whole sequence, but a sliding-window layer (Gemma
    3: 512 keys on 15 of 18 layers) lets a query see only the latest keys; a program
    that put weight on a key before the window would read what the model never
    reads there. Rows that do are restricted to the allowed keys and renormalised;
    a row left with no weight at all (say `bos` far past the window) goes wholly to
    the earliest key it may see, the window's own first token, as the language's
    "else bos" puts an empty row on the sequence's first. Other rows are returned
    untouched, bit for bit, so a full-attention layer sees exactly the program.

    `mask` is the additive float mask the eager builder makes (0 where allowed, the
    dtype's minimum where not) or a boolean one, broadcast over heads.
    """
    allowed = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
    allowed = allowed.expand_as(programs)
    kept = programs * allowed
    outside = (kept != programs).any(-1, keepdim=True)  # rows with weight on a hidden key
    if not outside.any():
        return programs
    mass = kept.sum(-1, keepdim=True)
    earliest = torch.zeros_like(programs)
    first = allowed.to(torch.int8).argmax(-1, keepdim=True)  # the first allowed key of each row
    earliest.scatter_(-1, first, 1.0)
    earliest = earliest * allowed  # a row that allows nothing (a padded query) stays empty
    restricted = torch.where(mass > 0, kept / mass.clamp_min(torch.finfo(programs.dtype).tiny), earliest)
    return torch.where(outside, restricted, programs)


def set_implementation(model, name: str) -> None:
    """Make `model`'s layers call the attention function registered under `name`."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers: the config attribute is what layers read
        model.config._attn_implementation = name
