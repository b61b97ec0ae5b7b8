"""Hypothesis strategies for attention programs and token tables.

Use them to property-test your own programs and tools:

    from hypothesis import given
    from headcode import testing
    from headcode.compiler import reference_evaluate

    @given(testing.programs(), testing.token_tables())
    def test_rows_sum_to_one(program, table):
        m = reference_evaluate(program, table)
        assert abs(m.sum(axis=1) - 1).max() < 1e-9

Strategies:

* `selectors()`: conditions using every atom (comparisons of each feature kind,
  classes of both sides, word sets, true/false) under and/or/not;
* `patterns()`: every pattern construct (uniform, nearest, earliest, decay,
  fallbacks, mixtures, softmax with conditions, distances and word tables), as
  core IR that the checker could have produced;
* `programs()`: patterns within the language's size and depth limits;
* `mixtures()`: mixtures of two to four terms (for properties of mixtures);
* `fitted_scores()`: score programs shaped like fitted ones (`mix3` of softmaxes
  whose terms are one-sided factors, word tables and the named relations
  `prev(k)`, `self`, `window(w)`, `same_sent`, `same_token`, ..., alone or under
  `and`), which `patterns()` produces only now and then;
* `program_texts()`: the same, printed as DSL text;
* `sketches()`: programs with holes (`?` for some numbers, `key.word{?N}` for some
  word tables), as `headcode fit` takes them;
* `token_tables()`: random sequences of words (including punctuation, quotes,
  line breaks, capitals, digits and closed-class words) as `TokenTable`s.
"""

from __future__ import annotations

from hypothesis import strategies as st

from headcode.dsl import ir
from headcode.dsl.features import MAX_DEPTH, MAX_NODES, CmpOp, Distance, Feature, Side, TokenClass
from headcode.dsl.printer import show
from headcode.dsl.validate import factor_problems

# Small vocabulary so that word sets and same-token conditions actually match.
WORDS = (
    "the", "a", "cat", "dog", "sat", "on", "mat", "and", "she", "he", "ran", "big", "red",
    "ball", "was", "happy", "Lily", "Tom", "Spot", "it", "to", "3", "42", ",", ".", "!", "?",
    '"', "'", "\n", "don't", "The", "Cat",
)
TABLE_WORDS = ("the", "a", "cat", "and", "she", ",", ".", '"', "\n", "don't", "x y", "ran", "3")

_ORDINAL = (Feature.POS, Feature.WORD, Feature.SENT)
_TOKEN = (Feature.TOK, Feature.PREV_TOK)
_small_weights = st.integers(0, 400).map(lambda u: u / 100)
_signed_weights = st.integers(-500, 500).map(lambda u: u / 100)


def comparisons() -> st.SearchStrategy[ir.Rel | ir.Threshold]:
    ops = st.sampled_from(list(CmpOp))
    key_query = st.builds(
        lambda f, op, c: ir.Rel(f, op, f, c),
        st.sampled_from(_ORDINAL), ops, st.integers(-6, 2),
    )
    constant = st.builds(ir.Threshold, st.sampled_from(list(Side)), st.sampled_from(_ORDINAL), ops, st.integers(-1, 8))
    tokens = st.builds(
        lambda f, g, op: ir.Rel(f, op, g, 0),
        st.sampled_from(_TOKEN), st.sampled_from(_TOKEN), st.sampled_from([CmpOp.EQ, CmpOp.NE]),
    )
    return st.one_of(key_query, constant, tokens)


def _atoms() -> st.SearchStrategy[ir.Selector]:
    return st.one_of(
        comparisons(),
        st.builds(ir.Cls, st.sampled_from(list(Side)), st.sampled_from(list(TokenClass))),
        st.builds(
            lambda side, ws: ir.WordSet(side, tuple(sorted(ws))),
            st.sampled_from(list(Side)), st.sets(st.sampled_from(TABLE_WORDS), min_size=1, max_size=4),
        ),
        st.builds(ir.Const, st.booleans()),
    )


def selectors(max_leaves: int = 6) -> st.SearchStrategy[ir.Selector]:
    return st.recursive(
        _atoms(),
        lambda inner: st.one_of(
            st.builds(ir.Not, inner),
            st.builds(lambda xs: ir.And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
            st.builds(lambda xs: ir.Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        ),
        max_leaves=max_leaves,
    )


def _selects() -> st.SearchStrategy[ir.Select]:
    plain = st.builds(
        ir.Select, selectors(), st.sampled_from([ir.Reduce.UNIFORM, ir.Reduce.NEAREST, ir.Reduce.EARLIEST])
    )
    decays = st.builds(
        lambda sel, r: ir.Select(sel, ir.Reduce.DECAY, r), selectors(), st.integers(1, 100).map(lambda u: u / 100)
    )
    return st.one_of(plain, decays)


def _tables() -> st.SearchStrategy[ir.WordTable]:
    return st.builds(
        lambda side, entries: ir.WordTable(side, tuple(sorted(entries.items()))),
        st.sampled_from(list(Side)),
        st.dictionaries(st.sampled_from(TABLE_WORDS), _signed_weights, min_size=1, max_size=4),
    )


def _factors() -> st.SearchStrategy[ir.Factor]:
    return st.one_of(selectors(max_leaves=3), st.builds(ir.Dist, st.sampled_from(list(Distance))), _tables())


def _relations() -> st.SearchStrategy[ir.Selector]:
    """Key-query conditions as the named ones write them (`prev(k)`, `self`, `window(w)`,
    `same_sent`, `same_word`, `same_token`, `induction`), plus a few other offsets."""
    def pos(op, c):
        return ir.Rel(Feature.POS, op, Feature.POS, c)

    def same(f):
        return ir.Rel(f, CmpOp.EQ, f, 0)

    return st.one_of(
        st.builds(pos, st.sampled_from(list(CmpOp)), st.integers(-8, 1)),
        st.builds(same, st.sampled_from(_ORDINAL + _TOKEN)),
        st.just(ir.And((same(Feature.TOK), pos(CmpOp.LE, -1)))),  # same_token
        st.just(ir.Rel(Feature.PREV_TOK, CmpOp.EQ, Feature.TOK, 0)),  # induction
    )


def _one_sided(side: Side) -> st.SearchStrategy[ir.Selector]:
    words = st.sets(st.sampled_from(TABLE_WORDS), min_size=1, max_size=4)
    return st.one_of(
        st.builds(ir.Cls, st.just(side), st.sampled_from(list(TokenClass))),
        st.builds(lambda ws: ir.WordSet(side, tuple(sorted(ws))), words),
        st.builds(lambda op, c: ir.Threshold(side, Feature.POS, op, c), st.sampled_from(list(CmpOp)),
                  st.integers(0, 6)),
    )


def _fitted_factors() -> st.SearchStrategy[ir.Factor]:
    sided = st.sampled_from(list(Side)).flatmap(_one_sided)
    return st.one_of(
        sided,
        _tables(),
        _relations(),
        st.builds(ir.Dist, st.sampled_from(list(Distance))),
        # `(query.punct and self)`, `(key.cap and same_sent)`: one-sided conditions under a relation
        st.builds(lambda a, r: ir.And((a, r)), sided, _relations()),
        _factors(),
    )


def fitted_scores() -> st.SearchStrategy[ir.Pattern]:
    """Score programs like the fitted ones: a softmax of many terms mixing one-sided
    factors, word tables and relations, or a mixture of up to three of them."""
    term = st.builds(lambda w, fs: ir.ScoreTerm(w, tuple(fs)), _signed_weights,
                     st.lists(_fitted_factors(), max_size=3).filter(_term_within_limits))
    score = st.builds(lambda ts: ir.Score(tuple(ts)), st.lists(term, min_size=1, max_size=12))
    return st.one_of(score, _mixtures(score)).filter(_within_limits)


def scores() -> st.SearchStrategy[ir.Score]:
    term = st.builds(lambda w, fs: ir.ScoreTerm(w, tuple(fs)), _signed_weights,
                     st.lists(_factors(), max_size=3).filter(_term_within_limits))
    return st.builds(lambda ts: ir.Score(tuple(ts)), st.lists(term, min_size=1, max_size=4))


def _mixtures(inner) -> st.SearchStrategy[ir.Mix]:
    weighted = st.builds(ir.Weighted, _small_weights, inner)
    return st.lists(weighted, min_size=1, max_size=4).filter(lambda ts: sum(t.weight for t in ts) > 0).map(
        lambda ts: ir.Mix(tuple(ts))
    )


def patterns(max_leaves: int = 5) -> st.SearchStrategy[ir.Pattern]:
    return st.recursive(
        st.one_of(_selects(), scores()),
        lambda inner: st.one_of(
            st.builds(lambda xs: ir.Fallback(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
            _mixtures(inner),
        ),
        max_leaves=max_leaves,
    )


def programs() -> st.SearchStrategy[ir.Pattern]:
    """Patterns within the language's limits (what `headcode.dsl.read` accepts)."""
    return patterns().filter(_within_limits)


def sketches() -> st.SearchStrategy[ir.Pattern]:
    """Programs with holes (`?`, `key.word{?N}`) where the language allows them: some
    decay rates, score weights and table weights, all or none of a mixture's weights,
    and now and then a whole word table left open."""

    @st.composite
    def holed(draw, tree):
        def hole(x):
            return ir.HOLE if draw(st.booleans()) else x

        def walk(p):
            if isinstance(p, ir.Select):
                return ir.Select(p.sel, p.reduce, hole(p.rate)) if p.reduce is ir.Reduce.DECAY else p
            if isinstance(p, ir.Fallback):
                return ir.Fallback(tuple(walk(o) for o in p.options))
            if isinstance(p, ir.Mix):
                holes = draw(st.booleans())
                return ir.Mix(tuple(ir.Weighted(ir.HOLE if holes else t.weight, walk(t.pattern)) for t in p.terms))
            terms = []
            for t in p.terms:
                factors = tuple(_holed_factor(f, hole, draw) for f in t.factors)
                tabled = any(isinstance(f, ir.TABLE_TYPES) for f in factors)
                terms.append(ir.ScoreTerm(t.weight if tabled else hole(t.weight), factors))
            return ir.Score(tuple(terms))

        return walk(tree)

    return programs().flatmap(holed)


def _holed_factor(f, hole, draw):
    if not isinstance(f, ir.WordTable):
        return f
    if draw(st.integers(0, 4)) == 0:
        return ir.OpenTable(f.side, len(f.entries))
    return ir.WordTable(f.side, tuple((w, hole(x)) for w, x in f.entries))


def mixtures() -> st.SearchStrategy[ir.Mix]:
    """Mixtures of two to four terms of any pattern, within the language's limits."""
    weighted = st.builds(ir.Weighted, _small_weights.filter(bool), patterns(max_leaves=3))
    return st.lists(weighted, min_size=2, max_size=4).map(lambda ts: ir.Mix(tuple(ts))).filter(_within_limits)


def _term_within_limits(factors) -> bool:
    return not factor_problems(factors)


def _within_limits(p: ir.Pattern) -> bool:
    return ir.size(p) <= MAX_NODES and ir.depth(p) <= MAX_DEPTH


def program_texts() -> st.SearchStrategy[str]:
    return programs().map(show)


def token_tables(min_size: int = 1, max_size: int = 24):
    """Random `TokenTable`s of min_size..max_size words drawn from WORDS."""
    from headcode.dsl.tokens import TokenTable  # numpy, only when tables are asked for

    return st.lists(st.sampled_from(WORDS), min_size=min_size, max_size=max_size).map(TokenTable.from_words)
