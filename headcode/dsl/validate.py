"""The checker of core IR: every rule and limit of the language, on trees that no
parser produced.

The syntax checker (`check`) reports problems in text with their positions; this
pass checks a tree itself (built by the synthesiser, by a test, or produced by the
canonical form), so that whatever enters the system as a `Program` satisfies the
language: node types and field types, numbers in range, word tables normalised,
within every size limit. It reports every problem it finds, tracr-style, as plain
messages naming the node.
"""

from __future__ import annotations

import math

from headcode.dsl import ir
from headcode.dsl.features import (
    MAX_DEPTH,
    MAX_DISTANCES,
    MAX_FALLBACKS,
    MAX_NODES,
    MAX_OFFSET,
    MAX_TABLE,
    MAX_TERMS,
    MAX_WEIGHT,
    CmpOp,
    Feature,
    Side,
)
from headcode.dsl.lexicon import normalise, text_problem


def problems(pattern: object) -> list[str]:
    """Every reason `pattern` is not a valid program (empty when it is one)."""
    if not isinstance(pattern, ir.PATTERN_TYPES):
        return [f"not a program: {type(pattern).__name__}"]
    return _Walk(words=True).program(pattern)


def factor_problems(factors) -> list[tuple[int, str]]:
    """(index of the factor, message) for each factor of one score term beyond the
    per-term limits (MAX_DISTANCES distances, one word table per side)."""
    out, distances, sides = [], 0, set()
    for k, f in enumerate(factors):
        if isinstance(f, ir.Dist):
            distances += 1
            if distances == MAX_DISTANCES + 1:
                out.append((k, f"a score term multiplies at most {MAX_DISTANCES} distances (dist, log_dist); "
                               "more could overflow"))
        elif isinstance(f, ir.TABLE_TYPES) and isinstance(f.side, Side):
            if f.side in sides:
                out.append((k, f"a score term has at most one {f.side.value}.word table; "
                               "merge them into one (their product could overflow)"))
            sides.add(f.side)
    return out


def limit_problems(pattern: ir.Pattern) -> list[str]:
    """The limits a valid program's canonical form may break: weights and sizes grow
    when equal terms merge, sets unite and `else bos` is added. Its words need no
    second look, since the canonical form only sorts, unites and intersects them."""
    return _Walk(words=False).program(pattern)


class _Walk:
    def __init__(self, words: bool):
        self.words = words  # whether to check each word (normalised, valid text)
        self.out: list[str] = []

    def program(self, pattern: ir.Pattern) -> list[str]:
        self.pattern(pattern)
        if not self.out:
            if (n := ir.size(pattern)) > MAX_NODES:
                self.out.append(f"program too large: {n} nodes (limit {MAX_NODES})")
            if (d := ir.depth(pattern)) > MAX_DEPTH:
                self.out.append(f"program too deep: {d} levels (limit {MAX_DEPTH})")
        return self.out

    def weight(self, x, what: str, signed: bool = True) -> None:
        if isinstance(x, ir.Hole):
            return  # a sketch's number, to be fitted
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            self.out.append(f"{what} must be a finite number, not {x!r}")
        elif abs(x) > MAX_WEIGHT:
            self.out.append(f"{what} {x:g} is out of range (|weight| <= {MAX_WEIGHT:g})")
        elif not signed and x < 0:
            self.out.append(f"{what} must be non-negative, not {x:g}")

    def pattern(self, p) -> None:
        out = self.out
        if isinstance(p, ir.Select):
            if not isinstance(p.reduce, ir.Reduce):
                out.append(f"a selection's reduction must be an ir.Reduce, not {p.reduce!r}")
            elif p.reduce is ir.Reduce.DECAY and not isinstance(p.rate, ir.Hole):
                if isinstance(p.rate, bool) or not isinstance(p.rate, (int, float)) or not 0 < p.rate <= 1:
                    out.append(f"decay rate must be in (0, 1], not {p.rate!r}")
            self.selector(p.sel)
        elif isinstance(p, ir.Fallback):
            if not isinstance(p.options, tuple) or not p.options:
                out.append("an else chain needs a tuple of options")
                return
            if len(p.options) > MAX_FALLBACKS:
                out.append(f"too many 'else' alternatives: {len(p.options)} (limit {MAX_FALLBACKS})")
            for option in p.options:
                self.child(option)
        elif isinstance(p, ir.Mix):
            if not isinstance(p.terms, tuple) or not p.terms:
                out.append("a mixture needs a tuple of terms")
                return
            if len(p.terms) > MAX_TERMS:
                out.append(f"too many mixture terms: {len(p.terms)} (limit {MAX_TERMS})")
            for t in p.terms:
                if not isinstance(t, ir.Weighted):
                    out.append(f"a mixture term must be an ir.Weighted, not {type(t).__name__}")
                    continue
                self.weight(t.weight, "mixture weight", signed=False)
                self.child(t.pattern)
            weights = [t.weight for t in p.terms if isinstance(t, ir.Weighted)]
            holes = [isinstance(w, ir.Hole) for w in weights]
            if any(holes) and not all(holes):
                out.append("a mixture's weights are all numbers or all holes")
            elif all(isinstance(w, (int, float)) for w in weights) and sum(weights) <= 0:
                out.append("mixture weights sum to zero")
        elif isinstance(p, ir.Score):
            if not isinstance(p.terms, tuple):
                out.append("a softmax needs a tuple of terms")
                return
            if len(p.terms) > MAX_TERMS:
                out.append(f"too many score terms: {len(p.terms)} (limit {MAX_TERMS})")
            for t in p.terms:
                if not isinstance(t, ir.ScoreTerm) or not isinstance(t.factors, tuple):
                    out.append(f"a score term must be an ir.ScoreTerm with a tuple of factors, not {t!r:.80}")
                    continue
                self.weight(t.weight, "score weight")
                if isinstance(t.weight, ir.Hole) and any(isinstance(f, ir.TABLE_TYPES) for f in t.factors):
                    out.append("a word table's weights are its entries; its term's weight cannot be a hole")
                for f in t.factors:
                    self.factor(f)
                out.extend(message for _, message in factor_problems(t.factors))

    def child(self, p) -> None:
        if isinstance(p, ir.PATTERN_TYPES):
            self.pattern(p)
        else:
            self.out.append(f"expected a pattern, got {type(p).__name__}")

    def factor(self, f) -> None:
        if isinstance(f, ir.Dist):
            return
        if isinstance(f, ir.OpenTable):
            self.side(f.side)
            if isinstance(f.limit, bool) or not isinstance(f.limit, int) or not 1 <= f.limit <= MAX_TABLE:
                self.out.append(f"an open word table holds 1..{MAX_TABLE} words, not {f.limit!r}")
            return
        if not isinstance(f, ir.WordTable):
            self.selector(f)
            return
        self.side(f.side)
        if not isinstance(f.entries, tuple):
            self.out.append("a word table's entries must be a tuple of (word, weight)")
            return
        if len(f.entries) > MAX_TABLE:
            self.out.append(f"word table too large: {len(f.entries)} entries (limit {MAX_TABLE})")
        seen: set = set()
        for entry in f.entries:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                self.out.append(f"a word-table entry must be a (word, weight) pair, not {entry!r:.60}")
                continue
            word, weight = entry
            self.word(word, seen)
            self.weight(weight, f"weight of {word!r:.40}")

    def word(self, word, seen: set) -> None:
        if not self.words:
            return
        out = self.out
        if not isinstance(word, str):
            out.append(f"a word must be a string, not {word!r:.40}")
            return
        if (problem := text_problem(word)) is not None:
            out.append(problem)
            return
        if normalise(word) != word:
            out.append(f"word {word!r:.40} is not normalised (lower case, no surrounding white space)")
        if word in seen:
            out.append(f"word {word!r:.40} appears twice in one table or set")
        seen.add(word)

    def side(self, side) -> None:
        if not isinstance(side, Side):
            self.out.append(f"side must be an ir Side, not {side!r}")

    def selector(self, sel) -> None:
        out = self.out
        if isinstance(sel, ir.Const):
            if not isinstance(sel.value, bool):
                out.append(f"a constant condition must be true or false, not {sel.value!r}")
        elif isinstance(sel, ir.Rel):
            if not (isinstance(sel.feature, Feature) and isinstance(sel.other, Feature) and isinstance(sel.op, CmpOp)):
                out.append(f"malformed relation {sel!r:.80}")
            elif sel.feature.ordinal != sel.other.ordinal or (sel.feature.ordinal and sel.feature is not sel.other):
                out.append(f"key.{sel.feature.value} cannot be compared with query.{sel.other.value}")
            elif not sel.feature.ordinal and (sel.op not in (CmpOp.EQ, CmpOp.NE) or sel.offset):
                out.append("token ids can only be tested for equality (== or !=), without an offset")
            self.offset(sel.offset)
        elif isinstance(sel, ir.Threshold):
            self.side(sel.side)
            if not (isinstance(sel.feature, Feature) and sel.feature.ordinal and isinstance(sel.op, CmpOp)):
                out.append(f"a threshold compares an ordinal feature with a number, not {sel!r:.80}")
            self.offset(sel.value)
        elif isinstance(sel, ir.Cls):
            self.side(sel.side)
        elif isinstance(sel, ir.WordSet):
            self.side(sel.side)
            if not isinstance(sel.words, tuple):
                out.append("a word set's words must be a tuple")
                return
            if len(sel.words) > MAX_TABLE:
                out.append(f"word set too large: {len(sel.words)} words (limit {MAX_TABLE})")
            seen: set = set()
            for w in sel.words:
                self.word(w, seen)
        elif isinstance(sel, ir.Not):
            self.selector(sel.arg)
        elif isinstance(sel, (ir.And, ir.Or)):
            if not isinstance(sel.args, tuple) or not sel.args:
                out.append("and/or need a tuple of conditions")
                return
            for a in sel.args:
                self.selector(a)
        else:
            out.append(f"expected a condition, got {type(sel).__name__}")

    def offset(self, x) -> None:
        if isinstance(x, bool) or not isinstance(x, int):
            self.out.append(f"offsets and thresholds are whole numbers, not {x!r}")
        elif abs(x) > MAX_OFFSET:
            self.out.append(f"offset {x} out of range (|offset| <= {MAX_OFFSET})")
