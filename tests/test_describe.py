"""What a program is to a reader: its description and family (fixed rules, a table of
expected sentences), its shape, and the `describe` command."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from headcode import testing
from headcode.cli import main
from headcode.dsl import DslError, Program
from headcode.dsl.describe import Family, describe, family
from headcode.dsl.shape import shape_id, shape_text

TABLE = [
    ("bos", "The first token.", Family.SINK),
    ("self", "The token itself.", Family.SELF),
    ("prev(1)", "The previous token; otherwise the first token.", Family.PREVIOUS),
    ("prev(3)", "The token 3 back; otherwise the first token.", Family.PREVIOUS),
    ("uniform", "Every earlier token evenly.", Family.POSITIONAL),
    ("window(8)", "The last 8 tokens, evenly.", Family.POSITIONAL),
    ("decay(0.8)", "Every earlier token, fading by 0.8 per step back.", Family.POSITIONAL),
    ("last(punct) else bos", "The latest punctuation mark; otherwise the first token.", Family.PUNCTUATION),
    ("first(cap)", "The first capitalised word; otherwise the first token.", Family.CONTENT),
    ("last(quote) else prev(1)", "The latest quotation mark; else the previous token; otherwise the first token.",
     Family.PUNCTUATION),
    ("same_token else bos", "Earlier copies of the query's token; otherwise the first token.", Family.SAME_TOKEN),
    ("induction else bos", "The token after an earlier copy of the query's token; otherwise the first token.",
     Family.INDUCTION),
    ("word_start", "The first piece of the query's word.", Family.SAME_TOKEN),
    ("sent_start", "The first token of the query's sentence.", Family.POSITIONAL),
    ("0.7*prev(1) + 0.3*bos", "Mostly the previous token (70%); also the first token (30%).", Family.PREVIOUS),
    ("0.5*bos + 0.5*self", "The first token (50%) and the token itself (50%).", Family.MIXED),
    ("0.7*(prev(1) else bos) + 0.3*window(3)",
     "Mostly the previous token, otherwise the first token (70%); also the last 3 tokens, evenly (30%).",
     Family.PREVIOUS),
    ("0.4*bos + 0.3*last(comma) + 0.3*prev(1)",
     "The first token (40%), the latest comma (30%) and the previous token (30%).", Family.MIXED),
    ("softmax(4*bos + 1.2*key.punct - 0.7*log_dist)", "Mostly the first token, then punctuation; prefers nearby keys.",
     Family.SINK),
    ("softmax(3*prev(1) - 2*key.punct)", "The previous token; avoids punctuation.", Family.PREVIOUS),
    ("softmax(-2*bos + key.word{the: 1.5, a: 1, of: -1})", "The words the, a; avoids the first token.", Family.CONTENT),
    ("softmax(2*bos + query.word{she: 2, he: 1.5}*prev(1))",
     "The first token, then the previous token after the words she, he.", Family.MIXED),
    ("softmax(0.5*dist)", "Prefers distant keys.", Family.POSITIONAL),
    ("uniform(key.word{the, a})", "The words a, the, evenly; otherwise the first token.", Family.CONTENT),
    ("softmax(2*same_token + bos)", "Mostly earlier copies of the query's token, then the first token.",
     Family.SAME_TOKEN),
    ("0.6*softmax(3*bos + key.punct) + 0.4*softmax(prev(1) - log_dist)",
     "60%: mostly the first token, then punctuation; 1 more softmax.", Family.MIXED),
]


@pytest.mark.parametrize("text, sentence, expected", TABLE)
def test_descriptions_and_families(text, sentence, expected):
    program = Program.of(text)
    assert describe(program) == sentence
    assert family(program) is expected


@pytest.mark.parametrize("a, b", [
    ("0.7*prev(1) + 0.3*bos", "0.2*prev(1) + 0.8*bos"),
    ("softmax(4*bos - 0.7*log_dist)", "softmax(2.5*bos + 0.2*log_dist)"),
    ("softmax(key.word{the: 1.2, a: -1})", "softmax(key.word{a: 3, the: 0.1})"),
    ("decay(key.punct, 0.5)", "decay(key.punct, 0.9)"),
])
def test_programs_that_differ_only_in_numbers_share_a_shape(a, b):
    assert shape_id(Program.of(a)) == shape_id(Program.of(b))


@pytest.mark.parametrize("a, b", [
    ("prev(1)", "prev(2)"),
    ("softmax(key.word{the: 1})", "softmax(key.word{a: 1})"),
    ("softmax(bos)", "softmax(bos + self)"),
    ("last(punct)", "first(punct)"),
])
def test_programs_that_differ_in_structure_have_different_shapes(a, b):
    assert shape_id(Program.of(a)) != shape_id(Program.of(b))


def test_shape_texts():
    assert shape_text(Program.of("0.7*prev(1) + 0.3*bos")) == "?*bos + ?*prev(1)"
    assert shape_text(Program.of("softmax(4*bos - 0.7*log_dist + key.word{a: -1, the: 1.2}*same_sent)")) == \
        "softmax(?*bos + ?*log_dist + same_sent*key.word{a: ?, the: ?})"
    assert shape_text(Program.of("decay(0.5)")) == "decay(?)"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(testing.programs())
def test_every_program_has_a_description_a_family_and_a_shape(tree):
    try:
        program = Program.of(tree)
    except DslError:
        return
    sentence = describe(program)
    assert sentence.endswith(".") and (not sentence[0].isalpha() or sentence[0].isupper())
    assert "\n" not in sentence
    assert isinstance(family(program), Family)
    assert "?" not in program.text and shape_text(program).count("?") >= 0


def test_describe_command(capsys):
    assert main(["describe", "last(punct) else bos"]) == 0
    out = capsys.readouterr().out
    assert out == "The latest punctuation mark; otherwise the first token.\nfamily: punctuation/delimiter\n"
    assert main(["describe", "--json", "0.3*bos + 0.7*prev(1)"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"program": "0.7*prev(1) + 0.3*bos", "description": describe(Program.of("0.7*prev(1) + 0.3*bos")),
                    "family": "previous token", "shape": "?*bos + ?*prev(1)", "size": 2, "chars": 21}
    assert main(["describe", "prevv(1)"]) == 1
    assert "unknown pattern 'prevv'" in capsys.readouterr().err
