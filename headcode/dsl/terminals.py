"""The grammar's terminals, as regexes, read from grammar.lark once.

grammar.lark is the one definition of the language. Besides the Lark parser
(`headcode.dsl.parse`), fast paths read its text with regexes of their own: the
hand-written parser (`headcode.dsl.fastparse`), word-table bodies in one step
(`headcode.dsl.entries`), bare words in the printer, and program lines in model
replies (`headcode.synth.prompt`). They take every terminal from here, so a change
to a terminal in grammar.lark changes them all; tests/test_dsl_fast.py checks that
the regexes they use are these.

`PARSER` is the Lark LALR parser of the grammar, built once (about 30 ms) and shared
with `headcode.dsl.parse`. The regexes are Lark's own (`get_terminal(name).pattern`).
The grammar writes its groups as `(?:...)` (a test checks), so the regexes capture
nothing and can sit inside larger ones; `atomic` wraps one so that a match, once
made, is never backtracked into (what possessive quantifiers did when these were
written by hand).
"""

from __future__ import annotations

from importlib import resources

import lark

PARSER = lark.Lark(
    resources.files("headcode.dsl").joinpath("grammar.lark").read_text("utf-8"),
    start=["program", "file"],
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=False,
)


def regex(name: str) -> str:
    """The regex of terminal `name` (a named one, or Lark's name for a literal: LPAR, ...)."""
    return PARSER.get_terminal(name).pattern.to_regexp()


def literal(name: str) -> str:
    """The text of a terminal that is a plain string, such as a keyword."""
    pattern = PARSER.get_terminal(name).pattern
    if not isinstance(pattern, lark.lexer.PatternStr):
        raise TypeError(f"terminal {name} is a regex, not a string")
    return pattern.value


def atomic(pattern: str) -> str:
    """`pattern` as one atomic group: matched as far as it goes, never given back."""
    return f"(?>{pattern})"


NAME = regex("NAME")  # names; also the bare words of sets and tables
DEFNAME = regex("DEFNAME")  # a program's name in a file (`L3.H7`)
NUMBER = regex("NUMBER")
STRING = regex("STRING")  # a quoted word
SIGNED_WEIGHT = regex("SIGNED_WEIGHT")
CMPOP = regex("CMPOP")
SIGN = regex("SIGN")
# The keywords, by terminal name (each is also a NAME; the lexer gives it the keyword's terminal).
KEYWORDS = {k: literal(k) for k in ("_ELSE", "_OR", "_AND", "_NOT", "TRUE", "FALSE")}
# The punctuation outside word tables (Lark names the grammar's anonymous strings).
PUNCTUATION = tuple(regex(k) for k in ("STAR", "LPAR", "RPAR", "COMMA", "DOT", "EQUAL"))
# What the grammar ignores between tokens: `#` comments and blanks.
COMMENT = regex("COMMENT")
IGNORED = tuple(regex(k) for k in PARSER.ignore_tokens)
