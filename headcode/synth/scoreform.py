"""Score-form synthesis: fit `softmax(weighted terms + word tables)` to every head.

Real heads mostly behave like a row-wise softmax of a few additive scores: a sink on
position 0, recency, a bonus for some key classes, and content (which key tokens a
head likes, and for which query tokens it looks back or at itself). This module
fits exactly the DSL's score form, so the fitted numbers print as a program that
means what was fitted:

    softmax(w1*bos + w2*prev(1) + ... + key.word{the: 1.2, ...}
            + query.word{".": 2.1, ...}*self + ...)

Every feature is a DSL score term, evaluated by the reference evaluator's own
`factor_values`, so there is no second definition of what a term means. The fit is
per layer (all its heads at once) in torch: cross-entropy to the head's rows first
(convex in the weights, a good start), then the paper's soft row IoU directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from headcode import dsl
from headcode.compiler.reference import factor_values
from headcode.dsl import ir
from headcode.dsl.features import MAX_TABLE, Side
from headcode.dsl.tokens import TokenTable
from headcode.torch_metrics import row_iou

# Additive terms (each becomes `weight*TERM`). Chosen from head profiles of small
# Llama and GPT-2 models: sinks and early positions, recency, key classes, token
# repeats, word and sentence structure, and query-class switches between looking
# back and staying put.
TERMS: tuple[str, ...] = (
    "bos", "self", "prev(1)", "prev(2)", "prev(3)", "prev(4)", "prev(5)", "prev(6)",
    "key.pos == 1", "key.pos == 2", "key.pos <= 4", "window(4)", "window(16)", "log_dist",
    "key.punct", "key.comma", "key.sent_end", "key.quote", "key.newline", "key.cap", "key.digit",
    "key.closed", "key.word_initial",
    "same_token", "induction", "same_word", "same_sent", "same_word and key.word_initial",
    "query.punct*self", "query.punct*prev(1)", "query.closed*self", "query.closed*prev(1)",
    "query.cap*prev(1)", "query.word_initial*self", "query.sent_end*self", "key.punct*same_sent",
)
# Factors that a query-side word table multiplies (`query.word{...}*FACTOR`).
QUERY_TABLE_FACTORS: tuple[str, ...] = ("bos", "self", "prev(1)", "prev(2)", "log_dist", "key.punct")
# Factors that a key-side word table multiplies ("true": the table alone).
KEY_TABLE_FACTORS: tuple[str, ...] = ("true", "same_sent")

VOCABULARY = 256  # words per table at most (the DSL allows MAX_TABLE)
TABLE_EPSILON = 0.1  # table entries smaller than this are dropped from the program
TERM_EPSILON = 0.02  # so are terms with a smaller weight


def _factors(term: str) -> tuple[ir.Factor, ...]:
    score = dsl.read(f"softmax(1*({term}))") if "*" not in term else dsl.read(f"softmax({term})")
    (only,) = score.terms
    return only.factors


TERM_FACTORS = tuple(_factors(t) for t in TERMS)
QUERY_FACTORS = tuple(_factors(t) for t in QUERY_TABLE_FACTORS)
KEY_FACTORS = tuple(() if t == "true" else _factors(t) for t in KEY_TABLE_FACTORS)


def _values(factors: tuple[ir.Factor, ...], table: TokenTable) -> np.ndarray:
    out = np.ones((len(table), len(table)))
    for factor in factors:
        out = out * factor_values(factor, table)
    return out


@dataclass(frozen=True)
class Features:
    """Everything the fit reads about one sequence (float32, full n x n)."""

    terms: np.ndarray  # [n, n, len(TERMS)]
    query_factors: np.ndarray  # [n, n, len(QUERY_TABLE_FACTORS)]
    key_factors: np.ndarray  # [n, n, len(KEY_TABLE_FACTORS)]
    key_words: np.ndarray  # int64[n]: vocabulary index of each token's text, or len(vocabulary)
    query_words: np.ndarray  # same indices (a token is a key and a query)


def vocabulary(tables: Sequence[TokenTable], size: int = VOCABULARY) -> tuple[str, ...]:
    """The most frequent token texts of the training sequences (ties by text)."""
    counts = Counter(t for table in tables for t in table.texts if t)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(w for w, _ in ranked[: min(size, MAX_TABLE)])


def features(table: TokenTable, vocab: Sequence[str]) -> Features:
    index = {w: k for k, w in enumerate(vocab)}
    words = np.array([index.get(t, len(vocab)) for t in table.texts], dtype=np.int64)
    terms = np.stack([_values(f, table) for f in TERM_FACTORS], axis=-1).astype(np.float32)
    query = np.stack([_values(f, table) for f in QUERY_FACTORS], axis=-1).astype(np.float32)
    key = np.stack([_values(f, table) for f in KEY_FACTORS], axis=-1).astype(np.float32)
    return Features(terms, query, key, words, words)


# --- fitting ------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSettings:
    ce_epochs: int = 4
    iou_epochs: int = 8
    ce_lr: float = 0.1
    iou_lr: float = 0.03
    batch: int = 8  # sequences per step
    components: int = 3  # softmaxes mixed per head (1: a single softmax)
    # Proximal L1 on word-table entries during the cross-entropy stage, per unit of
    # learning rate. Measured on dev paragraphs (5 layers): 0.4 cuts program text
    # about 3-4x at no measurable IoU cost; 0.5 costs 0.005, 1.0 empties the tables.
    table_l1: float = 0.4
    # Entries kept per head over all its word tables after the L1 stage, by importance
    # (None: all). A smaller full level costs accuracy (benchmarks/score_form_size.py,
    # dev paragraphs, 81 heads, score form alone, test IoU): all (19 KB) 0.699; 256:
    # 0.690 (5.6 KB); 128: 0.684 (4.0 KB). Keeping each table's largest |value|
    # instead was worse at the same size (16 per table: 0.677), hence the word counts.
    head_entries: int | None = None
    importance_power: float = 0.5  # importance of an entry: |value| * (word count) ** this
    seed: int = 0


@dataclass
class HeadParameters:
    """The fitted numbers of one head, before they become a program."""

    weights: np.ndarray  # [components, len(TERMS)]
    key_tables: np.ndarray  # [components, len(KEY_TABLE_FACTORS), V]
    query_tables: np.ndarray  # [components, len(QUERY_TABLE_FACTORS), V]
    mix: np.ndarray  # [components]: the weight of each softmax (sums to 1)


class Batch:
    """Sequences padded to one length, as torch tensors (built once, reused per layer).

    Rows of a softmax are independent, so the fit reads a fixed sample of at most
    `rows` query rows per sequence (rows 1..n-1; row 0 is one-hot in every causal
    model): the same estimate of the mean row loss at a fraction of the cost.
    """

    def __init__(self, items: list[int], feats: Sequence[Features], vocab_size: int, rows: int,
                 rng: np.random.Generator):
        import torch

        self.items, self.vocab_size = items, vocab_size
        lengths = [len(feats[k].key_words) for k in items]
        self.picked = [np.arange(1, m) if m - 1 <= rows else np.sort(rng.choice(np.arange(1, m), rows, replace=False))
                       for m in lengths]
        n, r, b = max(lengths), max(1, max(len(p) for p in self.picked)), len(items)
        self.n, self.r = n, r
        # Factor-major ([b, factors, rows, n]): one factor's values over a batch are one
        # contiguous block, so the fits weigh them with matrix multiplies and broadcast
        # products instead of einsums that copy per (sequence, key).
        terms = np.zeros((b, len(TERMS), r, n), dtype=np.float32)
        query = np.zeros((b, len(QUERY_TABLE_FACTORS), r, n), dtype=np.float32)
        key = np.zeros((b, len(KEY_TABLE_FACTORS), r, n), dtype=np.float32)
        words = np.full((b, n), vocab_size, dtype=np.int64)
        query_words = np.full((b, r), vocab_size, dtype=np.int64)
        valid = np.zeros((b, r, n), dtype=bool)
        scored = np.zeros((b, r), dtype=bool)
        for slot, k in enumerate(items):
            m, picked = lengths[slot], self.picked[slot]
            t = len(picked)
            terms[slot, :, :t, :m] = feats[k].terms[picked].transpose(2, 0, 1)
            query[slot, :, :t, :m] = feats[k].query_factors[picked].transpose(2, 0, 1)
            key[slot, :, :t, :m] = feats[k].key_factors[picked].transpose(2, 0, 1)
            words[slot, :m] = feats[k].key_words
            query_words[slot, :t] = feats[k].query_words[picked]
            valid[slot, :t, :m] = picked[:, None] >= np.arange(m)[None, :]
            scored[slot, :t] = True
        valid[:, :, 0] = True  # padded rows get a harmless one-key row (never scored)
        self.terms = torch.from_numpy(terms)
        self.query = torch.from_numpy(query)
        self.key = torch.from_numpy(key)
        self.words = torch.from_numpy(words)
        self.query_words = torch.from_numpy(query_words)
        self.valid = torch.from_numpy(valid)
        self.rows = torch.from_numpy(scored)
        self.lengths = lengths
        # The key mask as numbers, made once: added to logits (-1e9 off the mask; a
        # broadcast add is several times faster than masked_fill) and multiplied into
        # probabilities; and the rows a loss or gradient reads (scored rows, valid keys).
        self.bias = torch.zeros(b, r, n).masked_fill_(~self.valid, -1e9)
        self.keys = self.valid.float()
        self.scored_keys = (self.valid & self.rows[:, :, None]).float()


def layer_targets(batch: Batch, attention: Callable[[int], np.ndarray], layer: int, heads: int):
    """[b, heads, rows, n] float32: the captured sampled rows of one layer for a batch."""
    import torch

    out = np.zeros((len(batch.items), heads, batch.r, batch.n), dtype=np.float32)
    for slot, k in enumerate(batch.items):
        m, picked = batch.lengths[slot], batch.picked[slot]
        out[slot, :, : len(picked), :m] = attention(k)[layer][:, picked]
    return torch.from_numpy(out)


def masked_sum(weights, columns, batch: Batch):
    """[b, W, rows, n]: each of the W rows of `weights` [W, k] times the columns
    [b, k, rows, n], plus -1e9 off the key mask (a large finite negative, not -inf:
    logsumexp's gradient is NaN where all are -inf; a softmax gives exactly 0 there).
    One batched multiply-add, the bias included: a plain matmul of 2-D weights with
    3-D columns would first copy the columns into a transposed layout."""
    import torch

    b, k, rows, n = columns.shape
    return torch.baddbmm(batch.bias.view(b, 1, rows * n), weights.expand(b, -1, -1),
                         columns.reshape(b, k, rows * n)).view(b, len(weights), rows, n)


class _Model:
    """Per head, a mixture of `components` softmaxes of the score form.

    One softmax ties everything to one normalisation: a head that keeps a fixed
    share on the sink and spreads the rest by content cannot be said that way. A
    mixture can (`0.4*softmax(...) + 0.6*softmax(...)` is a DSL program too).
    """

    def __init__(self, heads: int, vocab_size: int, components: int, seed: int):
        import torch

        g = torch.Generator().manual_seed(seed)
        c = components
        self.weights = (0.01 * torch.randn(c, heads, len(TERMS), generator=g)).requires_grad_()
        self.key_tables = torch.zeros(c, heads, len(KEY_TABLE_FACTORS), vocab_size, requires_grad=True)
        self.query_tables = torch.zeros(c, heads, len(QUERY_TABLE_FACTORS), vocab_size, requires_grad=True)
        self.mix_logits = torch.zeros(heads, c, requires_grad=True)
        with torch.no_grad():
            self.weights[0, :, TERMS.index("bos")] = 2.0  # most heads sink; start one component there

    def parameters(self):
        return [self.weights, self.key_tables, self.query_tables, self.mix_logits]

    def logits(self, batch: Batch):
        """[b, components, heads, rows, n]: every component's scores, -1e9 off the key mask."""
        import torch

        c, heads = self.weights.shape[:2]
        b, count, rows, n = batch.terms.shape
        # The last vocabulary index is "not in the table": value 0.
        k = torch.cat([self.key_tables, torch.zeros(c, heads, len(KEY_TABLE_FACTORS), 1)], dim=3)
        q = torch.cat([self.query_tables, torch.zeros(c, heads, len(QUERY_TABLE_FACTORS), 1)], dim=3)
        # The weighted terms with the mask's bias (`masked_sum`); each word table's values
        # then join in one fused multiply-add per factor (`addcmul`: fewer passes over
        # the logits, forward and backward, than a product and a sum).
        logits = masked_sum(self.weights.reshape(c * heads, count), batch.terms, batch).view(b, c, heads, rows, n)
        kw = k[:, :, :, batch.words].permute(3, 0, 1, 2, 4)  # [b, c, h, g, n]: key j's word's value
        for g in range(kw.shape[3]):
            logits = torch.addcmul(logits, kw[:, :, :, g, None, :], batch.key[:, None, None, g])
        qw = q[:, :, :, batch.query_words].permute(3, 0, 1, 2, 4)  # [b, c, h, g, rows]: query i's
        for g in range(qw.shape[3]):
            logits = torch.addcmul(logits, qw[:, :, :, g, :, None], batch.query[:, None, None, g])
        return logits

    def log_probs(self, batch: Batch):
        """[b, heads, rows, n]: the mixture's log-probabilities (what `ce_loss` reads)."""
        import torch

        log_mix = torch.log_softmax(self.mix_logits, dim=1)[None, :, :, None, None].transpose(1, 2)  # [1, c, h, 1, 1]
        return torch.logsumexp(torch.log_softmax(self.logits(batch), dim=-1) + log_mix, dim=1)

    def probs(self, batch: Batch):
        """[b, heads, rows, n]: the mixture's probabilities (what `iou_loss` reads). Not
        exp(log_probs): torch's exp of the masked entries' -1e9 takes a slow path (several
        times slower in a profile), while softmax gives them an exact 0 at full speed."""
        import torch

        mix = torch.softmax(self.mix_logits, dim=1)[None, :, :, None, None].transpose(1, 2)  # [1, c, h, 1, 1]
        return (torch.softmax(self.logits(batch), dim=-1) * mix).sum(1)


def ce_loss(logp, target, batch):
    """The cross-entropy of `target` rows under log-probabilities `logp`."""
    per_row = -(target * logp * batch.keys[:, None]).sum(-1)  # [b, h, n]
    mask = batch.rows[:, None, :].float()
    return (per_row * mask).sum() / mask.sum().clamp(min=1) / per_row.shape[1]


def iou_loss(p, target, batch):
    """1 - the soft row IoU of `target` and probabilities `p` (exactly 0 off the key mask)."""
    per_row = row_iou(target, p)
    mask = batch.rows[:, None, :].float()
    return 1.0 - (per_row * mask).sum() / mask.sum().clamp(min=1) / per_row.shape[1]


def batches(feats: Sequence[Features], vocab_size: int, size: int, rows: int = 48, seed: int = 0) -> list[Batch]:
    """Sequences grouped by length (little padding), `size` per batch, `rows` rows each."""
    rng = np.random.default_rng(seed)
    order = sorted(range(len(feats)), key=lambda k: len(feats[k].key_words))
    return [Batch(order[s: s + size], feats, vocab_size, rows, rng) for s in range(0, len(order), size)]


def fit_layer(prepared: list[Batch], attention: Callable[[int], np.ndarray], layer: int, heads: int,
              vocab_size: int, settings: FitSettings = FitSettings()) -> list[HeadParameters]:
    """Fit every head of one layer; `attention(k)` is sequence k's [layers, heads, n, n]."""
    import torch

    generator = np.random.default_rng(settings.seed + layer)
    targets = [layer_targets(b, attention, layer, heads) for b in prepared]
    model = _Model(heads, vocab_size, settings.components, settings.seed + layer)
    # Stage 1, cross-entropy with an L1 proximal step on the word tables: it decides
    # which words a head cares about. Stage 2, the soft row IoU on that support only
    # (the "relaxed lasso"): the kept entries lose the shrinkage bias, the dropped
    # ones stay exactly zero, so tables stay short.
    for stage, (epochs, lr, loss_fn, output) in enumerate((
            (settings.ce_epochs, settings.ce_lr, ce_loss, model.log_probs),
            (settings.iou_epochs, settings.iou_lr, iou_loss, model.probs))):
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        if stage == 1 and settings.head_entries is not None:
            _keep_important(model, _word_counts(prepared, vocab_size), settings.head_entries,
                            settings.importance_power)
        sparse = settings.table_l1 > 0 or settings.head_entries is not None
        support = (model.key_tables != 0, model.query_tables != 0) if stage == 1 and sparse else None
        for _ in range(epochs):
            for k in generator.permutation(len(prepared)):
                optimiser.zero_grad()
                loss = loss_fn(output(prepared[k]), targets[k], prepared[k])
                loss.backward()
                optimiser.step()
                if support is None and settings.table_l1 > 0:
                    _shrink((model.key_tables, model.query_tables), lr * settings.table_l1)
                elif support is not None:
                    with torch.no_grad():
                        model.key_tables.mul_(support[0])
                        model.query_tables.mul_(support[1])
    w, key, query, mix = (t.detach().numpy().astype(np.float64) for t in model.parameters())
    shares = np.exp(mix - mix.max(axis=1, keepdims=True))
    shares /= shares.sum(axis=1, keepdims=True)
    return [HeadParameters(w[:, h], key[:, h], query[:, h], shares[h]) for h in range(heads)]


def _word_counts(prepared: Sequence[Batch], vocab_size: int) -> np.ndarray:
    """How often each vocabulary word occurs in the training batches (float64[V])."""
    counts = np.zeros(vocab_size + 1)
    for b in prepared:
        np.add.at(counts, b.words.numpy().ravel(), 1.0)
    return counts[:vocab_size]


def _keep_important(model: "_Model", counts: np.ndarray, budget: int, power: float) -> None:
    """Per head, zero all but the `budget` entries of all its word tables with the
    largest |value| * count ** power, in place: a word the text rarely holds changes
    few rows however large its weight."""
    import torch

    scale = torch.from_numpy(np.maximum(counts, 1.0) ** power).float()
    with torch.no_grad():
        tables = (model.key_tables, model.query_tables)  # [c, heads, g, V] each
        heads = tables[0].shape[1]
        flat = torch.cat([t.abs().mul(scale).transpose(0, 1).reshape(heads, -1) for t in tables], dim=1)
        if flat.shape[1] <= budget:
            return
        threshold = flat.topk(budget, dim=1).values[:, -1].clamp_min(1e-12)  # [heads]
        for t in tables:
            keep = t.abs().mul(scale) >= threshold[None, :, None, None]
            t.mul_(keep)


def _shrink(tensors, amount: float) -> None:
    """Soft-threshold in place (the proximal step of an L1 penalty): entries that the
    data does not keep pushing away from zero become exactly zero, so word tables
    stay short and readable."""
    import torch

    with torch.no_grad():
        for t in tensors:
            t.copy_(torch.sign(t) * torch.clamp(t.abs() - amount, min=0.0))


# --- parameters -> program ------------------------------------------------------------


def _table(side: Side, values: np.ndarray, vocab: Sequence[str]) -> ir.WordTable | None:
    entries = [(vocab[v], float(round(values[v], 2))) for v in range(len(vocab)) if abs(values[v]) >= TABLE_EPSILON]
    if not entries:
        return None
    return ir.WordTable(side, tuple(sorted(entries)))


def to_program(params: HeadParameters, vocab: Sequence[str]) -> dsl.Program:
    """The program the parameters stand for: one softmax, or a mixture."""
    scores = [_score(params.weights[c], params.key_tables[c], params.query_tables[c], vocab)
              for c in range(len(params.mix))]
    if len(scores) == 1:
        return dsl.Program.of(scores[0])
    return dsl.Program.of(ir.Mix(tuple(ir.Weighted(float(share), score) for share, score in zip(params.mix, scores))))


def _score(weights, key_tables, query_tables, vocab: Sequence[str]) -> ir.Score:
    terms: list[ir.ScoreTerm] = []
    for weight, factors in zip(weights, TERM_FACTORS):
        if abs(weight) >= TERM_EPSILON:
            terms.append(ir.ScoreTerm(float(weight), factors))
    for values, factors in zip(key_tables, KEY_FACTORS):
        key = _table(Side.KEY, values, vocab)
        if key is not None:
            terms.append(ir.ScoreTerm(1.0, (key, *factors)))
    for values, factors in zip(query_tables, QUERY_FACTORS):
        query = _table(Side.QUERY, values, vocab)
        if query is not None:
            terms.append(ir.ScoreTerm(1.0, (query, *factors)))
    return ir.Score(tuple(terms))


__all__ = ["FitSettings", "Features", "HeadParameters", "QUERY_TABLE_FACTORS", "TERMS", "batches", "features",
           "fit_layer", "masked_sum", "to_program", "vocabulary"]
