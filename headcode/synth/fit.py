"""Filling a sketch for one head: the numbers (and an open table's words) that best
reproduce the head's attention on training text.

Two kinds of sketch are filled (anything else is refused, saying what is missing):

* a softmax, `softmax(?*bos + key.word{the: ?} - 0.5*log_dist + query.word{?8}*prev(1))`:
  every hole is one column of the logits (its term's factors, as the reference
  evaluator's own `factor_values` reads them, times one word's indicator for a table
  entry), and fixed terms add to the logits. The weights are fitted from zero as the
  short programs' are: Adam on the cross-entropy to the head's rows, then on the soft
  row IoU. An open table (`{?8}`) takes its words one at a time: the word whose
  column has the largest gradient joins and every weight is refitted (forward
  selection, as `short` grows its atoms); words left with |weight| < OPEN_MIN are
  dropped, so a table holds only words that matter;
* a mixture of filled patterns, `?*prev(1) + ?*bos`: the shares (a softmax of free
  parameters, so they stay positive and sum to one) fitted on the soft row IoU.

A fit keeps whichever of its start (all holes zero; equal shares) and its end has
the lower training loss, so it never makes the training loss worse than the
sketch's starting point. Rows are 1..n-1 (row 0 is one-hot in every causal model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from headcode import dsl
from headcode.compiler import evaluate_many
from headcode.compiler.reference import factor_values
from headcode.dsl import ir
from headcode.dsl.features import Side
from headcode.errors import UserError


OPEN_MIN = 0.1  # an open table's word with a smaller |weight| after the fit is left out


@dataclass(frozen=True)
class FitSettings:
    ce_steps: int = 60  # Adam steps on the cross-entropy
    iou_steps: int = 40  # then on the soft row IoU
    word_steps: int = 15  # cross-entropy steps after each word an open table takes (then all of the above)
    lr: float = 0.1


@dataclass(frozen=True)
class Fitted:
    program: dsl.Program
    start_loss: float  # the training loss of the sketch's starting point
    loss: float  # the training loss of the filled program's weights (before rounding)


def fit(sketch: dsl.Program, tables: Sequence, targets: Sequence[np.ndarray],
        settings: FitSettings = FitSettings()) -> Fitted:
    """The filled program for a head whose attention on `tables` is `targets` ([n, n] each)."""
    if not sketch.holes:
        raise UserError("this program has no holes ('?') to fill; score it with headcode score --program")
    if isinstance(sketch.ir, ir.Score):
        return _fit_score(sketch.ir, tables, targets, settings)
    if isinstance(sketch.ir, ir.Mix) and all(isinstance(t.weight, ir.Hole) and not ir.holes(t.pattern)
                                             for t in sketch.ir.terms):
        return _fit_mix(sketch.ir, tables, targets, settings)
    raise UserError("fit fills a softmax sketch (softmax(?*bos + ...)) or a mixture of filled patterns "
                    "(?*prev(1) + ?*bos); this sketch has holes elsewhere (a decay rate, or inside a "
                    "mixture's or else-chain's parts)")


# --- the data: padded rows of every training sequence ---------------------------------


class _Rows:
    """Targets and masks of the training rows: up to ROWS query rows (1..n-1, sampled
    with a fixed seed) of each sequence, keys padded to the longest sequence."""

    ROWS = 32  # rows of a sequence read at most: the fit is fast and the rows enough

    def __init__(self, tables: Sequence, targets: Sequence[np.ndarray]):
        if not tables:
            raise UserError("no training sequences to fit on")
        rng = np.random.default_rng(0)
        self.n = max(len(t) for t in tables)
        self.index = []  # each sequence's sampled query rows
        for table in tables:
            rows = np.arange(1, len(table))
            self.index.append(np.sort(rng.choice(rows, self.ROWS, replace=False)) if len(rows) > self.ROWS else rows)
        s, r, n = len(tables), max(1, max(len(i) for i in self.index)), self.n
        self.rows = torch.zeros(s, r, dtype=torch.bool)
        valid = torch.zeros(s, r, n, dtype=torch.bool)  # causal keys of real tokens
        for k, rows in enumerate(self.index):
            self.rows[k, :len(rows)] = True
            for q, i in enumerate(rows):
                valid[k, q, :i + 1] = True
        self.valid = valid
        self.mask = torch.zeros(s, r, n).masked_fill(~valid, -1e9)  # added to logits: no weight off the mask
        self.target = self.pad(targets)
        self.tables = list(tables)

    def pad(self, values: Sequence[np.ndarray]):
        """[s, rows, n] float32 from one [len, len] array per sequence (its sampled rows)."""
        out = torch.zeros(len(values), self.rows.shape[1], self.n)
        for k, (v, rows) in enumerate(zip(values, self.index)):
            v = np.asarray(v, dtype=np.float32)
            out[k, :len(rows), :v.shape[1]] = torch.from_numpy(v[rows])
        return out

    def log_probs(self, logits):
        return torch.log_softmax(logits + self.mask, dim=-1)

    def ce(self, logp):
        per_row = -(self.target * logp).sum(-1)  # the target is 0 off the mask
        return per_row[self.rows].mean()

    def iou_loss(self, p):
        inter = torch.minimum(p, self.target).sum(-1)
        union = torch.maximum(p, self.target).sum(-1).clamp_min(1e-12)
        return 1 - (inter / union)[self.rows].mean()


# --- softmax sketches ------------------------------------------------------------------


@dataclass(frozen=True)
class _Hole:
    """One fitted column: term `term`'s weight, or the weight of `word` in its table."""

    term: int
    word: str | None = None


def _fit_score(score: ir.Score, tables, targets, settings: FitSettings) -> Fitted:
    for term in score.terms:
        free = sum(isinstance(f, ir.OpenTable) or (isinstance(f, ir.WordTable) and any(
            isinstance(x, ir.Hole) for _, x in f.entries)) for f in term.factors)
        if free > 1:
            raise UserError(f"`{dsl.show(term)}` multiplies two word tables to fit; a fit needs each term linear "
                            "in its holes (fill one of the tables)")
    data = _Rows(tables, targets)
    offset = data.pad([_fixed_logits(score, t) for t in tables])
    holes: list[_Hole] = []
    columns: list = []
    for k, term in enumerate(score.terms):
        if isinstance(term.weight, ir.Hole):
            holes.append(_Hole(k))
            columns.append(data.pad([_product(term.factors, t) for t in tables]))
        for f in term.factors:
            if isinstance(f, ir.WordTable):
                for word, x in f.entries:
                    if isinstance(x, ir.Hole):
                        holes.append(_Hole(k, word))
                        columns.append(data.pad([_entry_column(term, f, word, t) for t in tables]))
    weights = torch.zeros(len(holes))
    start = _loss(data, offset, columns, weights)
    weights = _refit(data, offset, columns, weights, settings)
    for k, term in enumerate(score.terms):  # open tables: forward selection of their words
        for f in term.factors:
            if isinstance(f, ir.OpenTable):
                rest = data.pad([_product(tuple(g for g in term.factors if g is not f), t) for t in tables])
                for _ in range(f.limit):
                    word = _best_word(data, offset, columns, weights, rest, f.side,
                                      {h.word for h in holes if h.term == k})
                    if word is None:
                        break
                    holes.append(_Hole(k, word))
                    columns.append(rest * data.pad([_indicator(t, f.side, word) for t in tables]))
                    weights = _refit(data, offset, columns, torch.cat([weights, torch.zeros(1)]), settings,
                                     ce_steps=settings.word_steps, iou_steps=0)
                weights = _refit(data, offset, columns, weights, settings)  # all weights, once more
    end = _loss(data, offset, columns, weights)
    if end > start:
        weights = torch.zeros(len(holes))
    program = _filled_score(score, holes, weights.tolist())
    return Fitted(program, float(start), float(min(start, end)))


def _fixed_logits(score: ir.Score, table) -> np.ndarray:
    """The logits of what the sketch fixes: numbered terms and numbered table entries."""
    n = len(table)
    out = np.zeros((n, n))
    for term in score.terms:
        if isinstance(term.weight, ir.Hole) or any(isinstance(f, ir.OpenTable) for f in term.factors):
            continue
        fixed = tuple(ir.WordTable(f.side, tuple((w, x) for w, x in f.entries if not isinstance(x, ir.Hole)))
                      if isinstance(f, ir.WordTable) else f for f in term.factors)
        out += term.weight * _product(fixed, table)
    return out


def _product(factors, table) -> np.ndarray:
    n = len(table)
    out = np.ones((n, n))
    for f in factors:
        out = out * factor_values(f, table)
    return out


def _entry_column(term: ir.ScoreTerm, table_factor: ir.WordTable, word: str, table) -> np.ndarray:
    rest = tuple(f for f in term.factors if f is not table_factor)
    return term.weight * _product(rest, table) * _indicator(table, table_factor.side, word)


def _indicator(table, side: Side, word: str) -> np.ndarray:
    return factor_values(ir.WordTable(side, ((word, 1.0),)), table)


def _logits(offset, columns, weights):
    if not columns:
        return offset
    return offset + torch.einsum("srnk,k->srn", torch.stack(columns, -1), weights)


def _loss(data: _Rows, offset, columns, weights) -> float:
    with torch.no_grad():
        return float(data.ce(data.log_probs(_logits(offset, columns, weights))))


def _refit(data: _Rows, offset, columns, start, settings: FitSettings, ce_steps: int | None = None,
           iou_steps: int | None = None):
    if not columns:
        return start
    ce_steps = settings.ce_steps if ce_steps is None else ce_steps
    iou_steps = settings.iou_steps if iou_steps is None else iou_steps
    weights = start.clone().requires_grad_()
    design = torch.stack(columns, -1)  # [s, rows, n, holes], stacked once
    optimiser = torch.optim.Adam([weights], lr=settings.lr)
    for step in range(ce_steps + iou_steps):
        optimiser.zero_grad()
        logp = data.log_probs(offset + design @ weights)
        loss = data.ce(logp) if step < ce_steps else data.iou_loss(logp.exp())
        loss.backward()
        optimiser.step()
    return weights.detach()


def _best_word(data: _Rows, offset, columns, weights, rest, side: Side, taken: set) -> str | None:
    """The word whose column has the largest cross-entropy gradient, not yet taken."""
    with torch.no_grad():
        p = data.log_probs(_logits(offset, columns, weights)).exp()
        r = (p - data.target) * (data.valid & data.rows[:, :, None]) * rest
    gradient: dict[str, float] = {}
    for k, (table, rows) in enumerate(zip(data.tables, data.index)):
        m, texts = len(table), table.texts
        if side is Side.KEY:
            pairs = zip(texts, r[k, :len(rows), :m].sum(0).tolist())
        else:
            pairs = zip((texts[i] for i in rows), r[k, :len(rows), :m].sum(1).tolist())
        for word, g in pairs:
            gradient[word] = gradient.get(word, 0.0) + g
    options = [(abs(g), w) for w, g in gradient.items() if w not in taken and abs(g) > 1e-6]
    return max(options)[1] if options else None


def _filled_score(score: ir.Score, holes: list[_Hole], values: list[float]) -> dsl.Program:
    value = {h: v for h, v in zip(holes, values)}
    terms = []
    for k, term in enumerate(score.terms):
        weight = value.get(_Hole(k), 0.0) if isinstance(term.weight, ir.Hole) else term.weight
        factors = []
        for f in term.factors:
            if isinstance(f, ir.WordTable):
                f = ir.WordTable(f.side, tuple((w, value.get(_Hole(k, w), 0.0) if isinstance(x, ir.Hole) else x)
                                               for w, x in f.entries))
            elif isinstance(f, ir.OpenTable):  # a word must earn its place: tiny weights are noise
                f = ir.WordTable(f.side, tuple(sorted((h.word, v) for h, v in value.items()
                                                      if h.term == k and h.word is not None and abs(v) >= OPEN_MIN)))
            factors.append(f)
        if any(isinstance(f, ir.WordTable) and not f.entries for f in factors):
            continue  # an open table that took no word: the term is zero
        terms.append(ir.ScoreTerm(_clip(weight), tuple(_clipped(f) for f in factors)))
    return dsl.Program.of(ir.Score(tuple(terms)))


def _clip(x: float) -> float:
    from headcode.dsl.features import MAX_WEIGHT

    return float(np.clip(x, -MAX_WEIGHT, MAX_WEIGHT))


def _clipped(f):
    if isinstance(f, ir.WordTable):
        return ir.WordTable(f.side, tuple((w, _clip(x)) for w, x in f.entries))
    return f


# --- mixtures of filled patterns -------------------------------------------------------


def _fit_mix(mix: ir.Mix, tables, targets, settings: FitSettings) -> Fitted:
    data = _Rows(tables, targets)
    parts = [dsl.Program.of(t.pattern) for t in mix.terms]
    matrices = [evaluate_many(parts, table) for table in tables]  # [parts, n, n] per sequence
    stacked = torch.stack([data.pad([m[c] for m in matrices]) for c in range(len(parts))])  # [parts, s, rows, n]
    present = (stacked.sum(-1) > 0).float()  # rows a part does not leave empty

    def mixed(theta):
        w = torch.softmax(theta, 0)
        total = (w[:, None, None] * present).sum(0).clamp_min(1e-12)
        return (w[:, None, None, None] * stacked).sum(0) / total[..., None]

    def loss(theta) -> float:
        with torch.no_grad():
            return float(data.iou_loss(mixed(theta)))

    theta0 = torch.zeros(len(parts))
    theta = theta0.clone().requires_grad_()
    optimiser = torch.optim.Adam([theta], lr=settings.lr)
    for _ in range(settings.ce_steps + settings.iou_steps):
        optimiser.zero_grad()
        data.iou_loss(mixed(theta)).backward()
        optimiser.step()
    start, end = loss(theta0), loss(theta.detach())
    best = theta.detach() if end <= start else theta0
    shares = torch.softmax(best, 0).tolist()
    program = dsl.Program.of(ir.Mix(tuple(ir.Weighted(w, t.pattern) for w, t in zip(shares, mix.terms))))
    return Fitted(program, start, min(start, end))
