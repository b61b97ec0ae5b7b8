"""The language: parsing, checking, canonical form and printing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headcode import dsl, testing
from headcode.dsl import ir, parse
from headcode.dsl.canon import canonical
from headcode.dsl.features import CmpOp, Feature, Side, TokenClass
from headcode.dsl.printer import show

BOS = ir.Select(ir.Threshold(Side.KEY, Feature.POS, CmpOp.EQ, 0), ir.Reduce.UNIFORM)


def prev(n: int) -> ir.Select:
    return ir.Select(ir.Rel(Feature.POS, CmpOp.EQ, Feature.POS, -n), ir.Reduce.UNIFORM)


# --- the texts the issue names must parse and mean what they say -------------------


def test_required_texts_parse_to_their_core_meaning():
    assert dsl.read("prev(1)") == prev(1)
    assert dsl.read("self") == prev(0)
    assert dsl.read("bos") == BOS
    assert dsl.read("uniform") == ir.Select(ir.Const(True), ir.Reduce.UNIFORM)
    assert dsl.read("0.7*prev(1) + 0.3*bos") == ir.Mix((ir.Weighted(0.7, prev(1)), ir.Weighted(0.3, BOS)))
    last_punct = ir.Select(ir.Cls(Side.KEY, TokenClass.PUNCT), ir.Reduce.NEAREST)
    assert dsl.read("last(punct) else bos") == ir.Fallback((last_punct, BOS))
    same = ir.And((
        ir.Rel(Feature.POS, CmpOp.LE, Feature.POS, -1),
        ir.Rel(Feature.TOK, CmpOp.EQ, Feature.TOK, 0),
    ))
    assert dsl.read("same_token else bos") == ir.Fallback((ir.Select(same, ir.Reduce.UNIFORM), BOS))
    induction = ir.Rel(Feature.PREV_TOK, CmpOp.EQ, Feature.TOK, 0)
    assert dsl.read("induction else bos") == ir.Fallback((ir.Select(induction, ir.Reduce.UNIFORM), BOS))


def test_every_named_construct_parses():
    texts = [
        "prev(3)", "self", "bos", "uniform", "window(4)", "same_token", "same_word", "same_sent",
        "word_start", "sent_start", "induction", "decay(0.5)", "decay(key.punct, 0.8)",
        "uniform(key.cap)", "nearest(key.quote)", "earliest(key.digit)",
        "last(punct)", "last(comma)", "last(sent_end)", "last(quote)", "last(newline)", "last(cap)",
        "last(digit)", "last(closed)", "first(word_initial)",
        "softmax(4.0*bos + 1.2*key.punct - 0.7*log_dist + 2.0*same_token)",
        "softmax(key.word{the: 1.2, and: 0.9, \",\": 0.7} + 0.5*dist)",
        "softmax(query.word{she: 2}*key.cap)",
        "uniform(key.word{the, and, \",\"})",
        "0.5*softmax(bos + key.punct) + 0.5*(last(punct) else bos)",
    ]
    for text in texts:
        p = dsl.read(text)
        assert dsl.read(show(p)) == p, text


# --- canonical form ----------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ("0.7*prev(1) + 0.3*bos", "0.3*bos + 0.7*prev(1)"),  # reordered terms
        ("0.5*bos + 0.2*prev(1) + 0.3*bos", "0.8*bos + 0.2*prev(1)"),  # duplicate terms
        ("7*prev(1) + 3*bos", "0.7*prev(1) + 0.3*bos"),  # normalised weights
        ("0.701*prev(1) + 0.299*bos", "0.7*prev(1) + 0.3*bos"),  # the grid
        ("prev(1)", "uniform(key.pos == query.pos - 1)"),  # sugar vs core
        ("prev(1)", "nearest(query.pos - 1 == key.pos)"),
        ("bos", "earliest(true)"),
        ("self", "nearest(true)"),
        ("last(punct)", "nearest(key.punct) else bos"),
        ("uniform(key.punct and key.cap)", "uniform(key.cap and key.punct)"),  # sorted and
        ("uniform(key.punct and (key.cap and key.comma))", "uniform(key.comma and key.cap and key.punct)"),
        ("uniform(not not key.punct)", "uniform(key.punct)"),  # double negation
        ("uniform(key.punct and true)", "uniform(key.punct)"),  # constant folding
        ("uniform(key.punct or false)", "uniform(key.punct)"),
        ("uniform(key.punct and key.pos <= query.pos)", "uniform(key.punct)"),  # causality
        ("key.pos >= query.pos", "self"),
        ("prev(0)", "self"),
        ("prev(2) else prev(2)", "prev(2)"),  # P else P
        # an option over the same keys as an earlier one never runs (found by CI)
        ("decay(not query.punct, 0.01) else decay(not query.punct, 0.02)", "decay(not query.punct, 0.01)"),
        ("decay(key.punct, 0.5) else last(punct) else bos", "decay(key.punct, 0.5) else bos"),
        ("window(1)", "self"),
        ("uniform(key.pos > query.pos - 4 and key.pos >= query.pos - 6)", "window(4)"),
        ("decay(1.0)", "uniform"),
        ("softmax(1.2*key.punct + 4*bos)", "softmax(4*bos + 1.2*key.punct)"),
        ("softmax(bos + bos + key.punct)", "softmax(2*bos + key.punct)"),
        ("softmax(bos + 3 + query.cap)", "softmax(bos)"),  # row-constant terms
        ("softmax(2*key.word{the: 1, a: 0.5})", "softmax(key.word{a: 1, the: 2})"),
        ("softmax(key.word{the: 1} + key.word{a: 2})", "softmax(key.word{a: 2, the: 1})"),
        ("uniform(key.word{The, the, a})", "uniform(key.word{a, the})"),
    ],
)
def test_same_meaning_same_canonical_text_and_id(a, b):
    assert dsl.Program.of(a).text == dsl.Program.of(b).text
    assert dsl.Program.of(a).id == dsl.Program.of(b).id


@pytest.mark.parametrize(
    "a, b",
    [
        ("prev(1)", "prev(2)"),
        ("last(punct)", "first(punct)"),
        ("0.6*prev(1) + 0.4*bos", "0.7*prev(1) + 0.3*bos"),
        ("same_token", "induction"),
        ("softmax(bos)", "softmax(2*bos)"),
        ("uniform(key.punct)", "uniform(query.punct)"),
        ("decay(0.5)", "decay(0.6)"),
    ],
)
def test_different_meanings_keep_different_ids(a, b):
    assert dsl.Program.of(a).id != dsl.Program.of(b).id


def test_canonical_examples_read_well():
    assert dsl.Program.of("0.3*bos + 0.7*prev(1)").text == "0.7*prev(1) + 0.3*bos"
    assert dsl.Program.of("prev(1)").text == "prev(1) else bos"
    assert (
        dsl.Program.of("softmax(4.0*bos + 1.2*key.punct - 0.7*log_dist + 2.0*same_token)").text
        == "softmax(4*bos + 1.2*key.punct - 0.7*log_dist + 2*same_token)"
    )


def test_weights_on_the_grid_sum_exactly_to_one():
    p = canonical(dsl.read("bos + self + prev(1)"))
    units = [round(t.weight * 100) for t in p.terms]
    assert sum(units) == 100 and sorted(units) == [33, 33, 34]


def test_program_id_is_sixteen_hex_digits():
    pid = dsl.Program.of("prev(1)").id
    assert len(pid) == 16 and int(pid, 16) >= 0


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, column, fragment",
    [
        ("prevv(1)", 1, 1, "unknown pattern 'prevv'; did you mean 'prev'"),
        ("prev(1, 2)", 1, 1, "prev takes"),
        ("prev(1.5)", 1, 6, "whole number"),
        ("prev(5000)", 1, 6, "out of range"),
        ("0.5*bos - 0.5*self", 1, 11, "non-negative"),
        ("last(foo)", 1, 6, "token class"),
        ("key.pos == query.word", 1, 1, "cannot be compared"),
        ("softmax(bos)\n  + nope", 2, 5, "unknown pattern 'nope'"),
        ("bos +", 1, 6, "unexpected end of input"),
        ("bos $", 1, 5, "unexpected character"),
        ("", 1, 1, "empty program"),
        ("not " * 40 + "key.punct", 1, 1, "too deep"),
        ("softmax(bos + dist*log_dist*dist)", 1, 29, "at most 2 distances"),
        ('key.word{a, "\\ud800"} else bos', 1, 13, "lone surrogate"),
        ("bos\r+ self", 1, 4, "not a line break"),
        ("bos +\n self # a\u2028b", 2, 10, "not a line break"),
        ('softmax(key.word{"\\udc00": 1})', 1, 18, "lone surrogate"),
        ("softmax(key.word{the: 1000}*key.word{the: 1000})", 1, 29, "at most one key.word table"),
    ],
)
def test_errors_have_positions(text, line, column, fragment):
    with pytest.raises(dsl.DslError) as info:
        dsl.read(text)
    d = info.value.diagnostics[0]
    assert (d.line, d.column) == (line, column)
    assert fragment in d.message


def test_all_problems_are_reported_at_once():
    with pytest.raises(dsl.DslError) as info:
        dsl.read("bogus + last(pnct) + prev(-1)")
    assert len(info.value.diagnostics) == 3
    rendered = info.value.render()
    assert rendered.count("error:") == 3 and "^" in rendered


def test_program_too_large():
    text = " + ".join(f"0.1*prev({k})" for k in range(60))
    big = "softmax(" + " + ".join(f"key.word{{w{k}: 1}}*key.punct*key.cap*dist*log_dist" for k in range(60)) + ")"
    dsl.read(text)  # 60 terms is fine
    with pytest.raises(dsl.DslError, match="too large"):
        dsl.read(big)


def test_table_size_limit():
    entries = ", ".join(f"w{k}: 1" for k in range(300))
    with pytest.raises(dsl.DslError, match="word table too large"):
        dsl.read(f"softmax(key.word{{{entries}}})")


# --- program files -------------------------------------------------------------------


def test_program_file_with_comments_round_trips_through_fmt():
    text = (
        "# My heads.\n\n"
        "# Looks back one token.\n"
        "prev_token = prev(1)\n\n"
        "L3.H7 = 0.3*bos +\n    0.7*prev(1)  # trailing comments are dropped\n"
    )
    programs = dsl.parse_programs(text, "heads.hc")
    assert [p.name for p in programs] == ["prev_token", "L3.H7"]
    assert programs[0].comments == ("# Looks back one token.",)
    formatted = dsl.format_programs(programs, ("# My heads.",))
    assert formatted == (
        "# My heads.\n\n# Looks back one token.\nprev_token = prev(1) else bos\n\n"
        "L3.H7 = 0.7*prev(1) + 0.3*bos\n"
    )
    again = dsl.parse_programs(formatted)
    assert dsl.format_programs(again, ("# My heads.",)) == formatted


def test_duplicate_names_in_a_file_are_errors():
    with pytest.raises(dsl.DslError) as info:
        dsl.parse_programs("a = bos\nb = self\na = prev(1)\n", "x.hc")
    d = info.value.diagnostics[0]
    assert (d.line, d.column) == (3, 1) and "already defined on line 1" in d.message


# --- properties ----------------------------------------------------------------------

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(testing.programs())
def test_canonicalise_is_idempotent(p):
    once = canonical(p)
    assert canonical(once) == once
    assert show(canonical(dsl.read(show(once)))) == show(once)


@PROPS
@given(testing.programs())
def test_print_parse_print_is_stable(p):
    text = show(p)
    assert show(dsl.read(text)) == text


@PROPS
@given(testing.mixtures())
def test_permuting_mixture_terms_changes_nothing(p):
    reordered = ir.Mix(tuple(reversed(p.terms)))
    assert dsl.Program.of(reordered) == dsl.Program.of(p)


@PROPS
@given(testing.programs())
def test_every_program_made_reads_back_as_itself(p):
    # Program.of refuses a canonical form beyond the language's limits, so whatever
    # it makes, printed and read again, is the same program.
    try:
        program = dsl.Program.of(p)
    except dsl.DslError:
        return
    assert dsl.read(program.text) == program.ir
    assert dsl.Program.of(program.text) == program


@pytest.mark.parametrize("text, fragment", [
    ("softmax(1*bos + 1000*bos)", "score weight 1001 is out of range"),
    ("softmax(2*key.word{the: 600})", "out of range"),
])
def test_a_canonical_form_beyond_the_limits_is_refused(text, fragment):
    with pytest.raises(dsl.DslError, match="in canonical form") as info:
        dsl.Program.of(text)
    assert fragment in str(info.value.diagnostics[0].message)


def test_programs_from_trees_are_validated():
    bad = ir.Mix((ir.Weighted(float("nan"), prev(1)),))
    with pytest.raises(dsl.DslError, match="finite number"):
        dsl.Program.of(bad)
    with pytest.raises(dsl.DslError, match="not normalised"):
        dsl.Program.of(ir.Select(ir.WordSet(Side.KEY, ("The",)), ir.Reduce.UNIFORM))


def test_size_counts_the_atoms_a_reader_reads():
    assert dsl.Program.of("0.7*prev(1) + 0.3*bos").size == 2
    assert dsl.Program.of("softmax(4*bos + 1.2*key.punct - 0.7*log_dist)").size == 3
    assert dsl.Program.of("softmax(key.word{the: 1, a: 2, of: 0.5}*same_sent)").size == 4
    assert dsl.Program.of("last(punct)").size == 2  # last(punct) else bos
    assert dsl.Program.of("uniform(key.punct and not key.comma)").size == 3  # ... else bos


_GRAMMAR_PIECES = st.sampled_from([
    "prev", "(", ")", "1", "0.5", "*", "+", "-", "else", "and", "or", "not", "key", ".", "pos", "==",
    "query", "{", "}", ",", ":", '"', "softmax", "bos", "x", " ", "\n", "#", "1e9", "==", "punct", "word",
])


@PROPS
@given(st.one_of(st.text(max_size=60), st.lists(_GRAMMAR_PIECES, max_size=30).map("".join)))
def test_parser_only_raises_its_own_error_with_a_position(text):
    try:
        dsl.read(text)
    except dsl.DslError as err:
        assert all(d.line >= 1 and d.column >= 1 for d in err.diagnostics)
        assert err.render()


def test_the_ir_checker_refuses_what_the_text_checker_refuses():
    table = ir.WordTable(Side.KEY, (("the", 1000.0),))
    tree = ir.Score((ir.ScoreTerm(1000.0, (table, table)),))
    with pytest.raises(dsl.DslError, match="at most one key.word table"):
        dsl.Program.of(tree)


@pytest.mark.parametrize("brk", ["\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"])
def test_a_file_with_another_line_break_is_refused_not_read_differently(brk):
    # `# doc<CR>b = bos` used to be one comment for the parser and two lines for fmt.
    with pytest.raises(dsl.DslError, match="not a line break"):
        dsl.parse_programs(f"# doc{brk}b = bos\n")
    assert [p.name for p in dsl.parse_programs("# doc\r\nb = bos\r\n")] == ["b"]


def test_errors_show_a_bounded_part_of_unbounded_input():
    # A 100,000-character name used to be echoed twice, whole.
    with pytest.raises(dsl.DslError) as info:
        dsl.read("a" * 100_000)
    rendered = info.value.render()
    assert len(rendered) < 600 and "characters more" in rendered
    with pytest.raises(dsl.DslError) as info:  # the caret still points at the problem
        dsl.read("softmax(" + " + ".join(["self"] * 60) + " + nope)")
    line, caret = info.value.render().splitlines()[1:3]
    assert line[caret.index("^"):].startswith("nope") and len(line) < 120


@pytest.mark.parametrize("entry", [dsl.read, dsl.parse_programs, parse.parse_expression, parse.parse_file])
def test_program_text_must_be_a_str(entry):
    with pytest.raises(TypeError, match="must be a str"):
        entry(b"bos")
    with pytest.raises(dsl.DslError, match="not a program: bytes"):
        dsl.Program.of(b"bos")
