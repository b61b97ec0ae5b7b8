"""The canonical form: one tree, one text and one id per meaning (as far as rules go).

Rules, each applied bottom-up (docs/dsl.md lists them with examples):

Selectors
  * negations pushed to the atoms (`not not x` is `x`; De Morgan; `not key.pos <= c`
    becomes `key.pos >= c + 1`), `<`/`>` rewritten as `<=`/`>=`;
  * `and`/`or` flattened, constants folded, duplicates dropped, `x and not x` is
    false, operands sorted by their text;
  * comparisons of one feature merged into one interval per `and`, with what
    causality implies (key.pos <= query.pos, features >= 0): `key.pos >= query.pos`
    is `self`, `key.pos <= query.pos + 2` is `true`;
  * word sets on one side intersected under `and`, united under `or`.
Patterns
  * a reduction over at most one key per row is `uniform`; `decay` with rate 1 is
    `uniform`; `nearest`/`earliest` over a query-only condition is `self`/`bos`;
  * `else` chains flattened, repeats dropped, an option that selects the same keys
    as an earlier one dropped (it is empty wherever that one is, so it never runs),
    cut after the first option that never leaves a row empty; a program that may leave rows empty ends in `else bos`;
  * mixtures: nested total mixtures flattened, equal terms merged (weights added),
    weights normalised to sum 1 on a grid of 1/GRID (largest remainder, so the
    grid weights sum exactly to 1), zero terms dropped, terms sorted by weight then
    text, a single term is its pattern;
  * softmax terms: conditions multiplied into one, term weights folded into word
    tables, equal terms merged, weights rounded to the grid, zero terms and terms
    constant along a row (query-only) dropped, terms sorted by text; no terms is
    `uniform`.
Sketches (holes, `ir.HOLE`)
  * a hole absorbs what multiplies or adds to it (`2*?` and `? + 0.5` are `?`, so
    `?*bos + ?*bos` is `?*bos`), and a term's number is absorbed by an open table;
  * a mixture of holes is flattened and its equal terms merged as above, but terms
    that hold holes are never merged (`?*decay(?) + ?*decay(?)` has two rates);
  * a softmax or mixture with holes has its terms sorted by their whole text, as
    `headcode.dsl.shape` writes a program's shape, so a program's shape is itself
    a canonical sketch.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict

from headcode.dsl import ir
from headcode.dsl.features import GRID, CmpOp, Feature, Side
from headcode.dsl.sugar import BOS, SELF

TRUE, FALSE = ir.Const(True), ir.Const(False)
NEVER = ir.Select(FALSE, ir.Reduce.UNIFORM)  # a pattern that leaves every row empty
BOS_PATTERN = ir.Select(BOS, ir.Reduce.UNIFORM)
UNIFORM = ir.Select(TRUE, ir.Reduce.UNIFORM)

_NEGATED = {CmpOp.EQ: CmpOp.NE, CmpOp.NE: CmpOp.EQ, CmpOp.LT: CmpOp.GE,
            CmpOp.GE: CmpOp.LT, CmpOp.GT: CmpOp.LE, CmpOp.LE: CmpOp.GT}


def canonical(pattern: ir.Pattern) -> ir.Pattern:
    """The canonical form of a whole program (total: no row is ever left empty)."""
    body = _pattern(pattern)
    if total(body):
        return body
    if body == NEVER:
        return BOS_PATTERN
    options = body.options if isinstance(body, ir.Fallback) else (body,)
    return ir.Fallback(options + (BOS_PATTERN,))


def grid(x: ir.Weight) -> ir.Weight:
    """Round to the canonical grid (1/GRID), half away from zero, without -0.0 (a hole stays one)."""
    if isinstance(x, ir.Hole):
        return x
    units = math.floor(abs(x) * GRID + 0.5)
    return math.copysign(units, x) / GRID if units else 0.0


def _add(a: ir.Weight, b: ir.Weight) -> ir.Weight:
    return ir.HOLE if isinstance(a, ir.Hole) or isinstance(b, ir.Hole) else a + b


def _times(a: ir.Weight, b: ir.Weight) -> ir.Weight:
    return ir.HOLE if isinstance(a, ir.Hole) or isinstance(b, ir.Hole) else a * b


def _sort_key(node) -> str:
    from headcode.dsl.printer import show  # printer imports canon's constants only lazily

    return show(node)


# --- totality --------------------------------------------------------------------


def holds_at_self(sel: ir.Selector) -> bool:
    """Whether the selector is true for key j = i in every row (so never empty)."""
    if isinstance(sel, ir.Const):
        return sel.value
    if isinstance(sel, ir.Rel) and sel.feature is sel.other:
        return _compare(0, sel.op, sel.offset)
    if isinstance(sel, ir.And):
        return all(holds_at_self(a) for a in sel.args)
    if isinstance(sel, ir.Or):
        return any(holds_at_self(a) for a in sel.args)
    return False


def holds_at_first(sel: ir.Selector) -> bool:
    """Whether the selector is true for key j = 0 in every row (ordinal features are 0 there)."""
    if isinstance(sel, ir.Const):
        return sel.value
    if isinstance(sel, ir.Threshold) and sel.side is Side.KEY:
        return _compare(0, sel.op, sel.value)
    if isinstance(sel, ir.And):
        return all(holds_at_first(a) for a in sel.args)
    if isinstance(sel, ir.Or):
        return any(holds_at_first(a) for a in sel.args)
    return False


def total(p: ir.Pattern) -> bool:
    """Whether a pattern provably never leaves a row empty."""
    if isinstance(p, ir.Select):
        return holds_at_self(p.sel) or holds_at_first(p.sel)
    if isinstance(p, ir.Fallback):
        return any(total(o) for o in p.options)
    if isinstance(p, ir.Mix):
        return any(total(t.pattern) for t in p.terms)
    return True  # Score


def _compare(a: int, op: CmpOp, b: int) -> bool:
    return {
        CmpOp.EQ: a == b, CmpOp.NE: a != b, CmpOp.LT: a < b,
        CmpOp.LE: a <= b, CmpOp.GT: a > b, CmpOp.GE: a >= b,
    }[op]


# --- selectors -------------------------------------------------------------------


def selector(sel: ir.Selector) -> ir.Selector:
    """The canonical form of a selector."""
    return _selector(sel, negate=False)


def _selector(sel: ir.Selector, negate: bool) -> ir.Selector:
    if isinstance(sel, ir.Not):
        return _selector(sel.arg, not negate)
    if isinstance(sel, ir.Const):
        return ir.Const(sel.value != negate)
    if isinstance(sel, _COMPARISONS):
        return _and_group([_compared(sel, _NEGATED[sel.op], _bound(sel)) if negate else sel])
    if isinstance(sel, (ir.Cls, ir.WordSet)):
        atom = ir.WordSet(sel.side, tuple(sorted(set(sel.words)))) if isinstance(sel, ir.WordSet) else sel
        if isinstance(atom, ir.WordSet) and not atom.words:
            return ir.Const(negate)
        return ir.Not(atom) if negate else atom
    # De Morgan: a negated `and` is an `or` of negations, and vice versa.
    conj = isinstance(sel, ir.And) != negate
    args = [_selector(a, negate) for a in sel.args]
    return _and(args) if conj else _or(args)


def _flatten(args, kind) -> list:
    out = []
    for a in args:
        out.extend(a.args if isinstance(a, kind) else (a,))
    return out


def _and(args: list[ir.Selector]) -> ir.Selector:
    args = [a for a in _flatten(args, ir.And) if a != TRUE]
    if FALSE in args:
        return FALSE
    cmps = [a for a in args if isinstance(a, _COMPARISONS)]
    rest = [a for a in args if not isinstance(a, _COMPARISONS)]
    merged = _and_group(cmps)
    rest.extend(merged.args if isinstance(merged, ir.And) else (merged,))
    rest = _merge_words(rest, intersect=True)
    if FALSE in rest:
        return FALSE
    return _finish(rest, ir.And, absorbing=FALSE, neutral=TRUE)


def _or(args: list[ir.Selector]) -> ir.Selector:
    args = [a for a in _flatten(args, ir.Or) if a != FALSE]
    if TRUE in args:
        return TRUE
    args = _merge_words(args, intersect=False)
    return _finish(args, ir.Or, absorbing=TRUE, neutral=FALSE)


def _finish(args, kind, absorbing, neutral) -> ir.Selector:
    unique = {a: None for a in args if a != neutral}
    if absorbing in unique:
        return absorbing
    for a in unique:
        if isinstance(a, ir.Not) and a.arg in unique:  # x and not x / x or not x
            return absorbing
    if len(unique) <= 1:
        return next(iter(unique), neutral)
    return kind(tuple(sorted(unique, key=_sort_key)))


def _merge_words(args: list[ir.Selector], intersect: bool) -> list[ir.Selector]:
    """Word sets of one side combine into one set (intersection under `and`)."""
    sets: dict[Side, set[str]] = {}
    out = []
    for a in args:
        if isinstance(a, ir.WordSet):
            if a.side in sets:
                sets[a.side] = sets[a.side] & set(a.words) if intersect else sets[a.side] | set(a.words)
            else:
                sets[a.side] = set(a.words)
        else:
            out.append(a)
    for side, words in sets.items():
        out.append(ir.WordSet(side, tuple(sorted(words))) if words else ir.Const(not intersect))
    return out


_COMPARISONS = (ir.Rel, ir.Threshold)


def _bound(c: ir.Rel | ir.Threshold) -> int:
    return c.offset if isinstance(c, ir.Rel) else c.value


def _compared(c: ir.Rel | ir.Threshold, op: CmpOp, bound: int) -> ir.Rel | ir.Threshold:
    """The comparison of c's quantity with another operator and bound."""
    return ir.Rel(c.feature, op, c.other, bound) if isinstance(c, ir.Rel) else ir.Threshold(c.side, c.feature, op, bound)


def _and_group(cmps: list[ir.Rel | ir.Threshold]) -> ir.Selector:
    """Comparisons under one `and`: one interval per compared quantity (see `_interval`)."""
    groups: dict[tuple, list] = defaultdict(list)
    for c in cmps:
        groups[(type(c), c.feature, c.other if isinstance(c, ir.Rel) else c.side)].append(c)
    out: list[ir.Selector] = []
    for (kind, feature, _), members in groups.items():
        if not feature.ordinal:
            # Token ids: only == and != with offset 0 exist (the checker sees to it).
            ops = {c.op for c in members}
            if ops == {CmpOp.EQ, CmpOp.NE}:
                return FALSE
            out.append(members[0])
            continue
        merged = _interval(members)
        if merged == FALSE:
            return FALSE
        out.extend(merged)
    return _finish([a for a in out if a != TRUE], ir.And, absorbing=FALSE, neutral=TRUE) if out else TRUE


def _interval(members: list[ir.Rel | ir.Threshold]) -> list[ir.Selector] | ir.Const:
    """Intersect the constraints on one ordinal quantity x and re-emit them minimally.

    x is key.F - query.F (causality: x <= 0) for a relation, the feature itself
    (x >= 0) for a threshold. Integers, so `x < c` is `x <= c - 1`.
    """
    first = members[0]
    implied_lo, implied_hi = (-math.inf, 0) if isinstance(first, ir.Rel) else (0, math.inf)
    lo, hi, holes = implied_lo, implied_hi, set()
    for c in members:
        bound = _bound(c)
        if c.op is CmpOp.EQ:
            lo, hi = max(lo, bound), min(hi, bound)
        elif c.op is CmpOp.LE:
            hi = min(hi, bound)
        elif c.op is CmpOp.LT:
            hi = min(hi, bound - 1)
        elif c.op is CmpOp.GE:
            lo = max(lo, bound)
        elif c.op is CmpOp.GT:
            lo = max(lo, bound + 1)
        else:
            holes.add(bound)
    while lo in holes:
        lo += 1
    while hi in holes:
        hi -= 1
    if lo > hi:
        return FALSE

    def make(op, value):
        return _compared(first, op, int(value))

    if lo == hi:
        return [make(CmpOp.EQ, lo)]
    out = []
    if lo > implied_lo:
        out.append(make(CmpOp.GE, lo))
    if hi < implied_hi:
        out.append(make(CmpOp.LE, hi))
    out.extend(make(CmpOp.NE, h) for h in sorted(holes) if lo < h < hi)
    return out or [TRUE]


def single_key(sel: ir.Selector) -> bool:
    """Whether a selector picks at most one key per row (an exact position)."""
    exact = (
        lambda c: isinstance(c, (ir.Rel, ir.Threshold)) and c.op is CmpOp.EQ and c.feature is Feature.POS
        and (isinstance(c, ir.Rel) or c.side is Side.KEY)
    )
    if exact(sel):
        return True
    return isinstance(sel, ir.And) and any(exact(a) for a in sel.args)


def query_only(sel: ir.Selector) -> bool:
    """Whether a selector reads only the query (so it is constant along a row)."""
    if isinstance(sel, ir.Const):
        return True
    if isinstance(sel, ir.Rel):
        return False
    if isinstance(sel, (ir.Threshold, ir.Cls, ir.WordSet)):
        return sel.side is Side.QUERY
    if isinstance(sel, ir.Not):
        return query_only(sel.arg)
    return all(query_only(a) for a in sel.args)


# --- patterns --------------------------------------------------------------------


@functools.singledispatch
def _pattern(p) -> ir.Pattern:
    raise TypeError(f"not a pattern: {p!r}")


@_pattern.register
def _(p: ir.Select) -> ir.Pattern:
    sel, reduce, rate = selector(p.sel), p.reduce, 1.0
    if sel == FALSE:
        return NEVER
    if reduce is ir.Reduce.DECAY and isinstance(p.rate, ir.Hole):
        rate = p.rate  # a rate to fit: none of the rules below for known rates applies
    elif reduce is ir.Reduce.DECAY:
        rate = grid(p.rate)
        if rate >= 1.0:
            reduce, rate = ir.Reduce.UNIFORM, 1.0
        elif rate <= 0.0:  # below the grid: all weight on the nearest key
            reduce, rate = ir.Reduce.NEAREST, 1.0
    if reduce in (ir.Reduce.NEAREST, ir.Reduce.EARLIEST) and query_only(sel):
        # Every key qualifies in the selected rows: the nearest is the query itself,
        # the earliest is position 0.
        sel = _and([sel, SELF if reduce is ir.Reduce.NEAREST else BOS])
        reduce = ir.Reduce.UNIFORM
    if single_key(sel):
        reduce, rate = ir.Reduce.UNIFORM, 1.0
    return ir.Select(sel, reduce, rate)


@_pattern.register
def _(p: ir.Fallback) -> ir.Pattern:
    options: list[ir.Pattern] = []
    for option in p.options:
        c = _pattern(option)
        for o in c.options if isinstance(c, ir.Fallback) else (c,):
            if o != NEVER and not any(_shadows(k, o) for k in options):
                options.append(o)
    for k, o in enumerate(options):
        if total(o):
            options = options[: k + 1]
            break
    if not options:
        return NEVER
    return options[0] if len(options) == 1 else ir.Fallback(tuple(options))


def _shadows(earlier: ir.Pattern, later: ir.Pattern) -> bool:
    """Whether `later` can never run after `earlier` in an else chain."""
    if earlier == later:
        return True
    # Every reduction is empty exactly where its selector selects nothing.
    return isinstance(earlier, ir.Select) and isinstance(later, ir.Select) and earlier.sel == later.sel


@_pattern.register
def _(p: ir.Mix) -> ir.Pattern:
    # Equal terms merge (weights added). The terms may be large softmaxes, costly
    # to hash and to print, so they are kept by position (in order of first
    # appearance, as a dict would keep them), found by equality, printed once.
    if any(isinstance(t.weight, ir.Hole) for t in p.terms):
        return _sketch_mix(p)
    patterns: list[ir.Pattern] = []
    weights: list[float] = []

    def add(q: ir.Pattern, weight: float) -> None:
        for k, known in enumerate(patterns):
            if (known is q or known == q) and not ir.holes(q):  # equal sketches are two fits, not one
                weights[k] += weight
                return
        patterns.append(q)
        weights.append(0.0 + weight)

    for term in p.terms:
        if term.weight <= 0:
            continue
        c = _pattern(term.pattern)
        if c == NEVER:
            continue
        if isinstance(c, ir.Mix) and all(total(t.pattern) and not isinstance(t.weight, ir.Hole) for t in c.terms):
            # The inner renormalisation is a no-op when no inner term can be empty.
            inner = sum(t.weight for t in c.terms)
            for t in c.terms:
                add(t.pattern, term.weight * t.weight / inner)
        else:
            add(c, term.weight)
    if not patterns:
        return NEVER
    printed: dict[int, str] = {}  # a term's text, printed only to break a tie (terms may be large softmaxes)

    def text(k: int) -> str:
        if k not in printed:
            printed[k] = _sort_key(patterns[k])
        return printed[k]

    units = _largest_remainder(weights, text)
    kept = _ordered([k for k, u in enumerate(units) if u > 0], lambda k: -units[k], text)
    if len(kept) == 1:
        return patterns[kept[0]]
    return ir.Mix(tuple(ir.Weighted(units[k] / GRID, patterns[k]) for k in kept))


def _sketch_mix(p: ir.Mix) -> ir.Pattern:
    """A mixture whose weights are all holes (the checker allows no other kind)."""
    patterns: list[ir.Pattern] = []
    for term in p.terms:
        c = _pattern(term.pattern)
        if c == NEVER:
            continue
        inner = c.terms if isinstance(c, ir.Mix) and all(isinstance(t.weight, ir.Hole) for t in c.terms) \
            and all(total(t.pattern) for t in c.terms) else [ir.Weighted(ir.HOLE, c)]
        for t in inner:
            if ir.holes(t.pattern) or t.pattern not in patterns:
                patterns.append(t.pattern)
    if not patterns:
        return NEVER
    if len(patterns) == 1:
        return patterns[0]
    terms = [ir.Weighted(ir.HOLE, q) for q in patterns]
    return ir.Mix(tuple(sorted(terms, key=lambda t: _sort_key(ir.Mix((t,))))))


def _ordered(indices: list[int], primary, text) -> list[int]:
    """`indices` sorted by (primary(k), text(k)), calling `text` only on ties of `primary`."""
    counts = Counter(primary(k) for k in indices)
    return sorted(indices, key=lambda k: (primary(k), text(k) if counts[primary(k)] > 1 else ""))


def _largest_remainder(weights: list[float], text) -> list[int]:
    """Weights as whole grid units summing exactly to GRID (Hamilton's method).

    Ties go to the term whose text sorts first, so the result does not depend on
    the order the terms were written in: the total is summed exactly (fsum) and
    remainders that differ only by float rounding (below 1e-9) count as ties.
    """
    total_weight = math.fsum(weights)
    shares = [w / total_weight * GRID for w in weights]
    units = [math.floor(s + 1e-9) for s in shares]
    left = GRID - sum(units)
    if left <= 0:
        return units  # nothing to hand out (weights already on the grid): no tie to break
    by_remainder = _ordered(list(range(len(shares))), lambda k: -round(shares[k] - units[k], 9), text)
    for k in by_remainder[: max(left, 0)]:
        units[k] += 1
    return units


@_pattern.register
def _(p: ir.Score) -> ir.Pattern:
    terms: list[ir.ScoreTerm] = []
    for term in p.terms:
        t = _score_term(term)
        if t is not None:
            terms.append(t)
    terms = _merge_terms(terms)
    if not terms:
        return UNIFORM
    if any(_has_holes(t) for t in terms):  # a sketch: by whole text, as its shape is written
        return ir.Score(tuple(sorted(terms, key=_sort_key)))
    # Sorted by what the terms read (their factors), not by their weights.
    return ir.Score(tuple(sorted(terms, key=lambda t: (_sort_key(ir.ScoreTerm(1.0, t.factors)), t.weight))))


def _has_holes(t: ir.ScoreTerm) -> bool:
    return isinstance(t.weight, ir.Hole) or any(
        isinstance(f, ir.OpenTable) or (isinstance(f, ir.WordTable) and any(isinstance(w, ir.Hole) for _, w in f.entries))
        for f in t.factors)


def _score_term(term: ir.ScoreTerm) -> ir.ScoreTerm | None:
    """One softmax term in canonical shape: [selector] [distances...] [tables...]."""
    sels = [f for f in term.factors if isinstance(f, ir.SELECTOR_TYPES)]
    dists = sorted((f for f in term.factors if isinstance(f, ir.Dist)), key=lambda d: d.kind.value)
    tables = [f for f in term.factors if isinstance(f, ir.TABLE_TYPES)]
    sel = selector(ir.And(tuple(sels))) if sels else TRUE
    if sel == FALSE or term.weight == 0:
        return None
    weight = term.weight
    canon_tables = []
    opened = any(isinstance(t, ir.OpenTable) for t in tables)  # its free weights absorb the term's
    for k, t in enumerate(sorted(tables, key=lambda t: t.side.value)):
        if isinstance(t, ir.OpenTable):
            canon_tables.append(t)
            continue
        scale = weight if k == 0 and not opened else 1.0
        entries = _table_entries(t.entries, scale)
        if not entries:
            return None  # the table is zero everywhere, so is the term
        canon_tables.append(ir.WordTable(t.side, entries))
    if canon_tables:
        weight = 1.0
    weight = grid(weight)
    if weight == 0:
        return None
    factors = ((sel,) if sel != TRUE else ()) + tuple(dists) + tuple(canon_tables)
    if _row_constant(factors):
        return None
    return ir.ScoreTerm(weight, factors)


def _table_entries(entries, scale: float) -> tuple[tuple[str, float], ...]:
    if scale == 1.0 and _canonical_entries(entries):
        return tuple(entries)  # what the general path below would rebuild, entry for entry
    merged: dict[str, ir.Weight] = {}
    for word, w in entries:
        merged[word] = _add(merged.get(word, 0.0), _times(w, scale))
    return tuple(sorted((w, grid(v)) for w, v in merged.items() if grid(v) != 0))


def _canonical_entries(entries) -> bool:
    """Whether entries are already sorted by word without repeats, on the grid and
    non-zero (so merging, rounding and sorting them changes nothing). Saved tables
    are, and each is canonicalised twice per term (see `_merge_terms`).

    `round(w * GRID) / GRID == w` says the same as `grid(w) == w` (w is k / GRID
    for a whole k), but in C: tables hold most of a library's numbers.
    """
    previous = None
    for word, weight in entries:
        if previous is not None and not previous < word:
            return False
        if not isinstance(weight, ir.Hole) and (weight == 0 or round(weight * GRID) / GRID != weight):
            return False
        previous = word
    return True


def _row_constant(factors) -> bool:
    for f in factors:
        if isinstance(f, ir.Dist):
            return False
        if isinstance(f, ir.TABLE_TYPES) and f.side is Side.KEY:
            return False
        if isinstance(f, ir.SELECTOR_TYPES) and not query_only(f):
            return False
    return True


def _merge_terms(terms: list[ir.ScoreTerm]) -> list[ir.ScoreTerm]:
    """Add up terms with the same factors; terms differing only in one word table
    (same side) become one term with the tables added entry by entry."""
    by_shape: dict[tuple, list[ir.ScoreTerm]] = defaultdict(list)
    for t in terms:
        tables = [f for f in t.factors if isinstance(f, ir.WordTable)]
        if len(tables) == 1:
            rest = tuple(f for f in t.factors if not isinstance(f, ir.WordTable))
            by_shape[("table", rest, tables[0].side)].append(t)
        else:
            by_shape[("plain", t.factors)].append(t)
    out = []
    for shape, group in by_shape.items():
        if len(group) == 1:  # already in canonical shape (`_score_term` made it)
            out.append(group[0])
            continue
        if shape[0] == "plain" and _has_holes(ir.ScoreTerm(1.0, shape[1])):
            # Tables with holes: two terms of a program that differ only in their tables'
            # numbers are two terms of its shape, each with numbers of its own (a hole
            # weight alone still absorbs the others: `?*bos + 0.5*bos` is `?*bos`).
            out.extend(group)
            continue
        if shape[0] == "plain":
            weight = 0.0
            for t in group:
                weight = _add(weight, t.weight)
            merged = ir.ScoreTerm(weight, group[0].factors)
        else:
            _, rest, side = shape
            entries = [e for t in group for f in t.factors if isinstance(f, ir.WordTable) for e in f.entries]
            merged = ir.ScoreTerm(1.0, rest + (ir.WordTable(side, tuple(entries)),))
        # Re-shape the sum (rounding, folding a summed weight into a table).
        again = _score_term(merged)
        if again is not None:
            out.append(again)
    return out
