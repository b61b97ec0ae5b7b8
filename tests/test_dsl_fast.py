"""The fast paths of loading programs agree with the general ones they stand beside:
the hand-written parser with the Lark grammar (spans included), canonical tables
and printed tables with their general computation, and word tables with tricky
words round-trip."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headcode import dsl, testing
from headcode.dsl import canon, fastparse, ir, printer
from headcode.dsl import syntax as s
from headcode.dsl.canon import GRID, canonical, grid
from headcode.dsl.features import Side
from headcode.dsl.lexicon import normalise
from headcode.dsl.printer import pretty, show
from headcode.library import HeadEntry, Level, LevelEntry, Library, ModelIdentity, fingerprint
from headcode.library import format as fmt

parse_module = importlib.import_module("headcode.dsl.parse")  # `dsl.parse` is the function

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Words that are awkward inside a table body: braces, separators, quotes, escapes,
# comment signs, blanks, keywords and non-ASCII text.
TRICKY = st.lists(st.sampled_from([*'ab{}",:#\\ \n\t\'é€🙂=*()', "and", "or", "not", "else", "true", "false",
                                    "softmax", "key", "x y"]), min_size=1, max_size=5).map("".join)


@st.composite
def tricky_tables(draw) -> ir.WordTable:
    words = draw(st.sets(TRICKY.map(normalise), min_size=1, max_size=8))
    weights = st.integers(-500, 500).filter(bool).map(lambda u: u / GRID)
    return ir.WordTable(draw(st.sampled_from(list(Side))), tuple(sorted((w, draw(weights)) for w in words)))


@st.composite
def tricky_programs(draw) -> ir.Pattern:
    """Mixtures of softmaxes whose terms hold word tables, as the synthesiser writes them."""
    def term():
        factors = draw(st.lists(testing.selectors(max_leaves=2), max_size=1)) + [draw(tricky_tables())]
        return ir.ScoreTerm(draw(st.integers(-300, 300).map(lambda u: u / GRID)), tuple(factors))

    scores = [ir.Score(tuple(term() for _ in range(draw(st.integers(1, 4))))) for _ in range(draw(st.integers(1, 3)))]
    return ir.Mix(tuple(ir.Weighted(draw(st.integers(1, 100)) / GRID, sc) for sc in scores))


ANY_PROGRAM = st.one_of(testing.programs(), tricky_programs())


# --- the fast parser agrees with the grammar ---------------------------------------------


def dump(x):
    """A syntax tree as plain data, spans included (they do not take part in ==)."""
    if isinstance(x, s.TableLit):
        return ("TableLit", x.side, x.attr, x.entries, x.span, tuple(x.entry_spans))
    if dataclasses.is_dataclass(x):
        return (type(x).__name__,) + tuple(dump(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, (tuple, list)):
        return tuple(dump(i) for i in x)
    return x


def by_grammar(text: str, start: str):
    """What the Lark parser of grammar.lark reads, or its error."""
    try:
        return dump(parse_module._transform(parse_module._parse(text, start), text).children)
    except dsl.DslError as err:
        return ("error", str(err))


def agree(text: str, start: str = "program") -> bool:
    """Whether the fast parser took the text (then it must read what the grammar reads)."""
    fast = fastparse.parse(text, start)
    if fast is not None:
        assert dump(fast) == by_grammar(text, start), text
    return fast is not None


def blanks(text: str, choices) -> str:
    """Blanks and comments after some separators (which may land inside quoted words:
    then the text is wrong, and the fast parser must decline it)."""
    return "".join(c + (next(choices) if c in " ,(*+" else "") for c in text)


def test_fast_paths_take_their_terminals_from_the_grammar():
    """One definition of the language's words: grammar.lark. The regexes of the fast
    paths are its terminals, as a Lark parser built here reads them."""
    from importlib import resources

    import lark

    from headcode.dsl import entries, terminals
    from headcode.synth import prompt

    grammar = lark.Lark(resources.files("headcode.dsl").joinpath("grammar.lark").read_text("utf-8"),
                        start=["program", "file"], parser="lalr")
    regex = {d.name: d.pattern.to_regexp() for d in grammar.terminals}
    for name in ("NAME", "DEFNAME", "NUMBER", "STRING", "SIGNED_WEIGHT", "CMPOP", "SIGN", "COMMENT"):
        assert getattr(terminals, name) == regex[name]
        assert re.compile(regex[name]).groups == 0, f"{name} captures (write its groups (?:...))"
    assert terminals.IGNORED == tuple(regex[k] for k in grammar.ignore_tokens)
    assert set(terminals.KEYWORDS.values()) == {"else", "or", "and", "not", "true", "false"}
    assert {k: grammar.get_terminal(k).pattern.value for k in terminals.KEYWORDS} == terminals.KEYWORDS
    ignored = "|".join(terminals.IGNORED)
    punctuation = "|".join((regex["SIGN"], *(regex[k] for k in ("STAR", "LPAR", "RPAR", "COMMA", "DOT", "EQUAL"))))
    assert fastparse._TOKEN.pattern == (
        f"(?P<skip>{ignored})|(?P<number>{regex['NUMBER']})|(?P<word>{regex['NAME']})"
        f"|(?P<cmpop>{regex['CMPOP']})|(?P<op>{punctuation})|(?P<table>{entries.TABLE_BODY})")
    assert fastparse._DEFNAME.pattern == regex["DEFNAME"]
    assert fastparse._KEYWORDS == frozenset(terminals.KEYWORDS.values())
    assert entries._WORD == f"(?:(?>{regex['NAME']})|(?>{regex['STRING']}))"
    assert entries._WEIGHT == f"(?>{regex['SIGNED_WEIGHT']})"
    assert entries._GAP == "(?:" + "|".join(f"(?>{r})" for r in terminals.IGNORED) + ")*+"
    assert f"(?>{regex['STRING']})|(?>{regex['COMMENT']})" in entries.TABLE_BODY
    assert printer._BARE_WORD.pattern == regex["NAME"]
    assert (prompt._IDENT.pattern, prompt._STRING.pattern, prompt._NUMBER.pattern) == (
        regex["NAME"], regex["STRING"], regex["NUMBER"])
    assert regex["DEFNAME"] in prompt._ASSIGN.pattern
    # ... and no module spells a name out again.
    root = resources.files("headcode")
    for path in sorted(pathlib.Path(str(root)).rglob("*.py")):
        assert "A-Za-z_" not in path.read_text("utf-8"), f"{path} writes a name pattern of its own"


@PROPS
@given(ANY_PROGRAM, st.lists(st.sampled_from(["", "", " ", "\n  ", " # note }{\",\n", "\t"]), min_size=1))
def test_fast_parser_reads_programs_as_the_grammar_does(p, gaps):
    text = show(p)
    assert agree(text) and agree(pretty(p, indent=9))  # plain printed programs take the fast path
    assert agree(f"(({text}))*bos + -({text})")
    cycle = iter(gaps * (len(text) + 1))
    agree(blanks(text, cycle))
    assert agree(f"# heads\n\nL3.H7 = {text}\n\n# second\nnext-one = {pretty(p, indent=11)}\n", "file")


PIECES = st.sampled_from([
    "prev", "(", ")", "1", "0.5", "*", "+", "-", "else", "and", "or", "not", "key", ".", "pos", "==", "<=", "=",
    "query", "{", "}", ",", ":", '"', "softmax", "bos", "x", " ", "\n", "#", "1e9", "1e999", "punct", "word",
    "true", "false", "a = ", "L3.H7", "{a: 1}", '{"}": 2, b}', "{a, A: 1}", '{"\\q": 1}', "# c\n", "\t", "١",
])


@PROPS
@given(st.lists(PIECES, max_size=30).map("".join), st.booleans())
def test_fast_parser_agrees_on_any_text_it_takes(text, as_file):
    agree(text, "file" if as_file else "program")


@pytest.mark.parametrize("text, line, column, message", [
    ("softmax(key.word{the: 1, a: 2,\n    The: 3})", 2, 5, "word 'the' appears twice in this table"),
    ('softmax(query.word{x: 1, "y": 2000})', 1, 26, "weight out of range"),
    ('softmax(key.word{ok: 1, "\\q": 2})', 1, 25, "bad escape in quoted word"),
    ("softmax(key.word{a: 1e999})", 1, 21, "weight '1e999' is not a finite number"),
    ("softmax(key.word{a: 1 b: 2})", 1, 23, "unexpected 'b'; expected ',', '}'"),
    ('softmax(key.word{a: 1, "b\n": 2})', 1, 24, "unexpected character '\"'"),
    ("softmax(key.word{a: 1, # note }\n  b: x})", 2, 6, "unexpected 'x'; expected a weight"),
    ('softmax(key.word{"{": 1, "}": 2, ",": 3, ":": 4, "#": 5, "\\"": 6, "\\\\": 7, "a b": 8, ",": 9})',
     1, 86, "word ',' appears twice"),
    ("softmax(key.word{a: 1,})", 1, 23, "unexpected '}'; expected a name, a quoted word"),
])
def test_table_errors_keep_their_positions(text, line, column, message):
    with pytest.raises(dsl.DslError) as info:
        dsl.read(text)
    d = info.value.diagnostics[0]
    assert (d.line, d.column) == (line, column) and d.message.startswith(message)


# --- round trips with tricky words ------------------------------------------------------


@PROPS
@given(tricky_programs())
def test_tables_with_tricky_words_round_trip(p):
    assert dsl.read(show(p)) == p
    assert dsl.read(pretty(p, indent=4)) == p
    once = canonical(p)
    assert canonical(once) == once and dsl.read(show(once)) == once


# --- canonical tables and printing: fast paths against the general computation ----------


def general_entries(entries, scale):
    """canon._table_entries without its fast path."""
    merged: dict[str, float] = {}
    for word, w in entries:
        merged[word] = merged.get(word, 0.0) + w * scale
    return tuple(sorted((w, grid(v)) for w, v in merged.items() if grid(v) != 0))


ON_GRID = st.integers(-10**6, 10**6).map(lambda u: u / GRID)
WEIGHTS = st.one_of(ON_GRID, st.just(0.0), st.just(-0.0), st.floats(-1e4, 1e4, allow_nan=False))


@PROPS
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "the", ",", "x y"]), WEIGHTS), max_size=6),
       st.booleans(), st.sampled_from([1.0, 1, 2.0, -0.5, 0.013]))
def test_canonical_table_entries_fast_path_agrees(entries, presort, scale):
    if presort:  # mostly the canonical shape the fast path is for
        entries = sorted(dict(entries).items())
    assert canon._table_entries(tuple(entries), scale) == general_entries(entries, scale)


@PROPS
@given(st.one_of(ON_GRID, st.floats(-1e9, 1e9, allow_nan=False), ON_GRID.map(lambda x: x + 1e-12)))
def test_on_grid_test_is_grid_fixed_point(x):
    assert canon._canonical_entries([("a", x)]) == (x != 0 and grid(x) == x)


def old_pretty(p, indent=0, width=88):
    """printer.pretty as it was: the line first, then the parts again."""
    line = show(p)
    if indent + len(line) <= width:
        return line
    pad = " " * (indent + 2)
    if isinstance(p, ir.Fallback):
        parts = [f"({printer._pattern(o)})" if isinstance(o, ir.Fallback) else printer._pattern(o) for o in p.options]
        return f"\n{pad}else ".join(parts)
    if isinstance(p, ir.Mix):
        return f"\n{pad}+ ".join(printer._weighted(t) for t in p.terms)
    if isinstance(p, ir.Score):
        return f"softmax(\n{pad}  " + printer._terms(p.terms, f"\n{pad}") + f"\n{' ' * indent})"
    return line


@PROPS
@given(ANY_PROGRAM, st.integers(0, 30), st.sampled_from([20, 88, 400]))
def test_pretty_prints_as_before(p, indent, width):
    assert pretty(p, indent, width) == old_pretty(p, indent, width)


def test_equal_tables_print_alike():
    as_float = ir.WordTable(Side.KEY, (("a", 1.0), ("b", -0.0), ("c", 2.5)))
    as_int = ir.WordTable(Side.KEY, (("a", 1), ("b", 0), ("c", 2.5)))
    assert as_float == as_int and show(as_float) == show(as_int) == "key.word{a: 1, b: 0, c: 2.5}"


# --- libraries --------------------------------------------------------------------------

MODEL = ModelIdentity("tiny", "LlamaForCausalLM", 3, 4, 2, fingerprint({"layers": 3}, {"a": 0, "b": 1}))
SPLIT = {"corpus": "c", "shape": "packed", "max_len": 8, "one_per_line": False, "seed": 0,
         **{k: {"train": 1, "validation": 1, "test": 1} for k in ("counts", "sequences", "tokens")}}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tricky_programs(), min_size=1, max_size=4))
def test_library_of_tricky_tables_loads_and_saves_byte_identically(programs):
    programs = [dsl.Program.of(p) for p in programs]
    heads = [HeadEntry(k // 4, k % 4, {Level.FULL: LevelEntry(p.id, "score")}) for k, p in enumerate(programs)]
    lib = Library(model=MODEL, split=SPLIT, created="2025-01-31T12:00:00Z", heads=heads, programs=programs)
    files = lib.files()
    loaded = Library.from_files(files, "L")
    assert loaded.files() == files and dict(loaded.programs) == dict(lib.programs)
    assert loaded.without_head(0, 0).files() == lib.without_head(0, 0).files()


def test_library_table_error_has_its_position():
    program = dsl.Program.of("softmax(key.word{the: 1, a: 2}*bos)")
    lib = Library(model=MODEL, split=SPLIT, created="2025-01-31T12:00:00Z",
                  heads=[HeadEntry(0, 0, {Level.FULL: LevelEntry(program.id, "score")})], programs=[program])
    manifest = json.loads(lib.files()[fmt.MANIFEST])
    programs = lib.files()[fmt.PROGRAMS].decode().replace("the: 1", "the: 1, A: 3")
    manifest.pop("content_hash")
    data = programs.encode()
    manifest["content_hash"] = fmt.content_hash(fmt.dump_json(manifest), data)
    with pytest.raises(Exception) as info:
        Library.from_files({fmt.MANIFEST: fmt.dump_json(manifest), fmt.PROGRAMS: data}, "L")
    line = programs.splitlines().index(next(x for x in programs.splitlines() if "A: 3" in x)) + 1
    column = programs.splitlines()[line - 1].index("A: 3") + 1
    assert str(info.value) == (f"L/programs.hc:{line}:{column}: program does not parse: "
                               "word 'a' appears twice in this table (words are compared lower-cased)")
