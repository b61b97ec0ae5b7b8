"""Short programs: small softmaxes found by forward selection of atoms, shared by
groups of similar heads.

The full score form (`scoreform`) fits every term and 2,000 word-table weights at
once; pruning such a program to a few terms loses most of what it knew. Short
programs are searched for in their own right, one atom at a time (grafting,
Perkins et al. 2003):

    softmax(-0.8*key.punct - 0.6*log_dist)  ->  ... + key.word{".": 1.4}  ->  ...

An *atom* is one weight of the score form: a term (`bos`, `prev(1)`, `key.punct`,
`log_dist`, `query.punct*self`, ...: scoreform.TERMS) or one entry of a word table
(`key.word{the: w}`, `query.word{she: w}*prev(1)`, ...). Heads are first grouped
by what they attend to (`groups`: spherical k-means of each head's gradient over
every atom at the uniform start), and each group grows one list of atoms that all
its heads share, each head with its own weights: at each step the atom with the
largest summed gradient of the members' cross-entropy (each member's gradient
normalised, so that every head counts alike) joins (a word table holds at most
TABLE_WORDS entries), and every member's weights are refitted, first to
cross-entropy and then to the soft row IoU. The programs after 1, 2, ...
`steps` atoms are each member's candidates; members of a group share their
*shapes* (`headcode.dsl.shape`), which is what lets a library of 270 heads read
as a few dozen ideas. Weights are rounded to a coarse grid (GRID), so that heads
can share whole programs too.

`fill` fits the weights of a given list of atoms (a shape) to heads.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from headcode import dsl
from headcode.dsl import ir
from headcode.dsl.features import Side
from headcode.heads import Head
from headcode.synth import scoreform as sf

TABLE_WORDS = 8  # entries of one word table of a short program, at most
GRID = 0.1  # short programs' weights are multiples of this


class Kind(enum.Enum):
    TERM = "term"  # scoreform.TERMS[factor]
    KEY_WORD = "key word"  # key.word{word: w} * KEY_TABLE_FACTORS[factor]
    QUERY_WORD = "query word"  # query.word{word: w} * QUERY_TABLE_FACTORS[factor]


@dataclass(frozen=True)
class Atom:
    kind: Kind
    factor: int  # index into the terms, or into the table factors of its kind
    word: int = -1  # vocabulary index (word-table atoms only)


@dataclass(frozen=True)
class ShortSettings:
    groups: int = 30  # groups of heads that share atoms (fewer: fewer shapes, less fit)
    steps: int = 16  # atoms per group at most
    sequences: int = 192  # training sequences read (48 rows of each)
    batch: int = 16  # sequences per optimiser step
    ce_steps: int = 16  # optimiser steps of the refit after each new atom: cross-entropy,
    iou_steps: int = 16  # then soft IoU (cycling through the batches)
    ce_lr: float = 0.1
    iou_lr: float = 0.03
    polish_steps: int = 64  # steps of each loss when a chosen program is refitted on the whole split
    seed: int = 0


@dataclass(frozen=True)
class Step:
    """A candidate: a head's program after some atoms of its group, those atoms and
    their fitted weights (before rounding to the GRID)."""

    atoms: tuple[Atom, ...]
    weights: tuple[float, ...]
    program: dsl.Program


@dataclass(frozen=True)
class Rows:
    """The training rows every fit reads: batches of sampled rows (`prepared`) and
    each head's targets in them. A task that fits some heads gets `without_targets()`
    shared with every other task and its own heads' targets (`with_targets`)."""

    prepared: tuple  # scoreform.Batch, ...
    targets: Mapping[Head, list]  # head -> per batch, its [b, rows, n] captured rows

    @classmethod
    def of(cls, prepared: Sequence[sf.Batch], attention: Callable[[int], np.ndarray], heads: Sequence[Head],
           heads_per_layer: int) -> "Rows":
        by_layer = {layer: [sf.layer_targets(b, attention, layer, heads_per_layer) for b in prepared]
                    for layer in sorted({h.layer for h in heads})}
        return cls(tuple(prepared), {h: [t[:, h.head] for t in by_layer[h.layer]] for h in heads})

    @property
    def vocab_size(self) -> int:
        return self.prepared[0].vocab_size

    def without_targets(self) -> "Rows":
        return Rows(self.prepared, {})

    def with_targets(self, targets: Mapping[Head, list]) -> "Rows":
        return Rows(self.prepared, dict(targets))

    def targets_of(self, members: Sequence[Head]) -> dict[Head, list]:
        return {h: self.targets[h] for h in members}

    def stacked(self, members: Sequence[Head]) -> list:
        """Per batch, the members' targets [b, members, rows, n]."""
        import torch

        return [torch.stack([self.targets[m][k] for m in members], 1) for k in range(len(self.prepared))]


class _Design:
    """A group's atoms, their values on every training row, and the members' fit."""

    def __init__(self, rows: Rows, members: Sequence[Head], width: int, settings: ShortSettings):
        import torch

        self.rows, self.members, self.settings = rows, list(members), settings
        self.targets = rows.stacked(self.members)
        self.atoms: list[Atom] = []
        # [b, atoms, rows, n]: atoms before rows, so that the weights' product is one
        # matrix multiply per batch with the members' logits contiguous ([b, m, rows, n]).
        self.columns = [torch.zeros(b.terms.shape[0], width, *b.terms.shape[2:]) for b in rows.prepared]

    def add(self, atom: Atom) -> None:
        for batch, x in zip(self.rows.prepared, self.columns):
            x[:, len(self.atoms)] = _column(batch, atom)
        self.atoms.append(atom)

    def refit(self, start, ce_steps: int, iou_steps: int):
        """The members' weights [members, atoms], from `start`: `ce_steps` of
        cross-entropy, then `iou_steps` of soft IoU."""
        import torch

        s, width = self.settings, len(self.atoms)
        weights = start[:, :width].clone().requires_grad_()
        data = list(zip(self.columns, self.rows.prepared, self.targets))
        for count, lr, loss_fn, output in ((ce_steps, s.ce_lr, sf.ce_loss, torch.log_softmax),
                                           (iou_steps, s.iou_lr, sf.iou_loss, torch.softmax)):
            optimiser = torch.optim.Adam([weights], lr=lr)
            for step in range(count):
                x, batch, target = data[step % len(data)]
                optimiser.zero_grad()
                loss_fn(output(sf.masked_sum(weights, x[:, :width], batch), dim=-1), target, batch).backward()
                optimiser.step()
        out = torch.zeros_like(start)
        out[:, :width] = weights.detach()
        return out

    def gradients(self, weights):
        """The cross-entropy gradient of every atom at `weights`, per member: terms
        [members, T], key words [members, FK, V], query words [members, FQ, V]."""
        import torch

        vocab, m = self.rows.vocab_size, len(self.members)
        g_terms = torch.zeros(m, len(sf.TERMS))
        g_key = torch.zeros(m, vocab + 1, len(sf.KEY_TABLE_FACTORS))
        g_query = torch.zeros(m, vocab + 1, len(sf.QUERY_TABLE_FACTORS))
        width = len(self.atoms)
        with torch.no_grad():
            for x, batch, target in zip(self.columns, self.rows.prepared, self.targets):
                p = torch.softmax(sf.masked_sum(weights[:, :width], x[:, :width], batch), dim=-1)
                # d(cross-entropy)/d(logit) = p - target, on scored rows and valid keys
                r = (p - target) * batch.scored_keys[:, None]
                b, terms, rows, n = batch.terms.shape
                g_terms += torch.matmul(r.reshape(b, m, rows * n),
                                        batch.terms.reshape(b, terms, rows * n).transpose(1, 2)).sum(0)
                g_key += _by_word(torch.einsum("bmrn,bfrn->bmnf", r, batch.key), batch.words, vocab)
                g_query += _by_word(torch.einsum("bmrn,bfrn->bmrf", r, batch.query), batch.query_words, vocab)
        return g_terms, g_key[:, :vocab].transpose(1, 2), g_query[:, :vocab].transpose(1, 2)


def _column(batch: sf.Batch, atom: Atom):
    if atom.kind is Kind.TERM:
        return batch.terms[:, atom.factor]
    if atom.kind is Kind.KEY_WORD:
        return (batch.words[:, None, :] == atom.word).float() * batch.key[:, atom.factor]
    return (batch.query_words[:, :, None] == atom.word).float() * batch.query[:, atom.factor]


def _by_word(values, words, vocab: int):
    """[members, vocab + 1, factors]: values [b, members, tokens, factors] summed by each token's word."""
    import torch

    b, m, tokens, factors = values.shape
    index = words[:, None, :, None].expand(b, m, tokens, factors)
    return torch.zeros(b, m, vocab + 1, factors).scatter_add_(2, index, values).sum(0)


def _flat(grads):
    """Each member's gradients over every atom as one row: [members, atoms]."""
    import torch

    g_terms, g_key, g_query = grads
    return torch.cat([g_terms, g_key.flatten(1), g_query.flatten(1)], 1)


def _atom_at(index: int, vocab: int) -> Atom:
    """The atom of column `index` of `_flat`."""
    t, fk = len(sf.TERMS), len(sf.KEY_TABLE_FACTORS)
    if index < t:
        return Atom(Kind.TERM, index)
    index -= t
    if index < fk * vocab:
        return Atom(Kind.KEY_WORD, index // vocab, index % vocab)
    index -= fk * vocab
    return Atom(Kind.QUERY_WORD, index // vocab, index % vocab)


def groups(rows: Rows, heads: Sequence[Head], settings: ShortSettings) -> list[list[Head]]:
    """Heads grouped by what they attend to: spherical k-means (k-means++ start, seeded)
    of each head's normalised gradient over every atom at the uniform softmax."""
    import torch

    design = _Design(rows, heads, 1, settings)
    signature = _flat(design.gradients(torch.zeros(len(heads), 1)))
    signature = signature / signature.norm(dim=1, keepdim=True).clamp_min(1e-12)
    k = min(settings.groups, len(heads))
    rng = np.random.default_rng(settings.seed)
    centres = [int(rng.integers(len(heads)))]
    while len(centres) < k:
        distance = (1 - (signature @ signature[centres].T).max(1).values).clamp_min(0).double().numpy()
        centres.append(int(rng.choice(len(heads), p=distance / distance.sum())) if distance.sum() > 0
                       else next(i for i in range(len(heads)) if i not in centres))
    centre = signature[centres].clone()
    for _ in range(20):
        assign = (signature @ centre.T).argmax(1)
        for g in range(k):
            if (assign == g).any():
                mean = signature[assign == g].sum(0)
                centre[g] = mean / mean.norm().clamp_min(1e-12)
    assign = (signature @ centre.T).argmax(1).tolist()
    return [members for g in range(k) if (members := [h for h, a in zip(heads, assign) if a == g])]


def paths(rows: Rows, members: Sequence[Head], vocab: Sequence[str],
          settings: ShortSettings = ShortSettings()) -> dict[Head, list[Step]]:
    """Each member's path: its programs after 1, 2, ... `steps` of the group's atoms."""
    import torch

    design = _Design(rows, members, settings.steps, settings)
    weights = torch.zeros(len(members), settings.steps)
    out: dict[Head, list[Step]] = {m: [] for m in members}
    for _ in range(settings.steps):
        grads = _flat(design.gradients(weights)).abs()
        votes = (grads / grads.sum(1, keepdim=True).clamp_min(1e-12)).sum(0)
        atom = _best_atom(design.atoms, votes, len(vocab))
        if atom is None:
            break
        design.add(atom)
        weights = design.refit(weights, settings.ce_steps, settings.iou_steps)
        for k, m in enumerate(members):
            w = weights[k, :len(design.atoms)].tolist()
            out[m].append(Step(tuple(design.atoms), tuple(w), to_program(design.atoms, w, vocab)))
    return out


def _best_atom(chosen: list[Atom], votes, vocab: int) -> Atom | None:
    """The atom with the most votes that is not chosen and whose table has room."""
    votes = votes.clone()
    t, fk = len(sf.TERMS), len(sf.KEY_TABLE_FACTORS)
    for atom in chosen:
        votes[_index(atom, vocab)] = -1
    for kind, start, factors in ((Kind.KEY_WORD, t, fk), (Kind.QUERY_WORD, t + fk * vocab, len(sf.QUERY_TABLE_FACTORS))):
        for f in range(factors):
            if sum(1 for a in chosen if a.kind is kind and a.factor == f) >= TABLE_WORDS:
                votes[start + f * vocab: start + (f + 1) * vocab] = -1
    best = int(votes.argmax())
    return _atom_at(best, vocab) if votes[best] > 0 else None


def _index(atom: Atom, vocab: int) -> int:
    t, fk = len(sf.TERMS), len(sf.KEY_TABLE_FACTORS)
    if atom.kind is Kind.TERM:
        return atom.factor
    if atom.kind is Kind.KEY_WORD:
        return t + atom.factor * vocab + atom.word
    return t + fk * vocab + atom.factor * vocab + atom.word


def fill(rows: Rows, members: Sequence[Head], atoms: Sequence[Atom], vocab: Sequence[str],
         start: Sequence[Sequence[float]], settings: ShortSettings = ShortSettings()) -> dict[Head, dsl.Program]:
    """Each member's program with the given atoms, its weights fitted from `start` (per
    member, one weight per atom: where its path ended) for `polish_steps` of each loss."""
    import torch

    design = _Design(rows, members, len(atoms), settings)
    for atom in atoms:
        design.add(atom)
    weights = design.refit(torch.tensor(start, dtype=torch.float32), settings.polish_steps, settings.polish_steps)
    return {m: to_program(atoms, weights[k].tolist(), vocab) for k, m in enumerate(members)}


def to_program(atoms: Sequence[Atom], weights: Sequence[float], vocab: Sequence[str]) -> dsl.Program:
    """The softmax of the weighted atoms, weights on the GRID (zero weights dropped)."""
    terms: list[ir.ScoreTerm] = []
    tables: dict[tuple[Kind, int], list[tuple[str, float]]] = {}
    for atom, w in zip(atoms, weights):
        w = round(round(w / GRID) * GRID, 2)
        if w == 0:
            continue
        if atom.kind is Kind.TERM:
            terms.append(ir.ScoreTerm(w, sf.TERM_FACTORS[atom.factor]))
        else:
            tables.setdefault((atom.kind, atom.factor), []).append((vocab[atom.word], w))
    for (kind, f), entries in sorted(tables.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        side, factors = (Side.KEY, sf.KEY_FACTORS[f]) if kind is Kind.KEY_WORD else (Side.QUERY, sf.QUERY_FACTORS[f])
        terms.append(ir.ScoreTerm(1.0, (ir.WordTable(side, tuple(sorted(entries))), *factors)))
    return dsl.Program.of(ir.Score(tuple(terms)))
