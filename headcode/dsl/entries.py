"""Word-table bodies read in one step, for the fast parser (`headcode.dsl.fastparse`).

Saved libraries are mostly word tables (`key.word{the: 0.93, ",": 0.41, ...}` with
hundreds of entries); reading every word, colon, weight and comma as a token of
its own was the main cost of loading one. The fast parser instead takes a whole
body `{...}` as one token (`TABLE_BODY` below), and `split` checks its shape with
one regex match and cuts out the entries with another, both in C.

This is only a shortcut for well-formed text: each token here is the grammar's
own terminal (NAME, STRING, SIGNED_WEIGHT, the ignored blanks and `#` comments,
read from grammar.lark by `headcode.dsl.terminals`), and on anything unexpected
`split` returns None, so that the general parser reads the text again and reports
the problem exactly as it always did. Atomic groups and possessive quantifiers
(`(?>...)`, `*+`) keep every match linear in the input; they lose nothing, as no
token can start with what ends the one before it.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Sequence

from headcode.dsl.errors import Span
from headcode.dsl.terminals import COMMENT, IGNORED, NAME, SIGNED_WEIGHT, STRING, atomic

# A table body as one token: `{`, then anything but braces, with quoted words
# and comments taken whole (they may hold `}`), then `}`. The three alternatives
# start with different characters (a STRING starts with `"`, a COMMENT with `#`),
# so a failing match cannot backtrack far.
TABLE_BODY = rf'\{{(?:[^{{}}"#]++|{atomic(STRING)}|{atomic(COMMENT)})*+\}}'

_GAP = rf"(?:{'|'.join(map(atomic, IGNORED))})*+"  # what the grammar ignores: blanks, comments
_WORD = rf"(?:{atomic(NAME)}|{atomic(STRING)})"  # `?word: NAME | STRING`
_WEIGHT = atomic(SIGNED_WEIGHT)
_ENTRY = rf"{_WORD}(?:{_GAP}:{_GAP}{_WEIGHT})?+"

# `{` [entry ("," entry)*] `}`, as in grammar.lark.
_BODY = re.compile(rf"\{{{_GAP}(?P<entries>{_ENTRY}{_GAP}(?:,{_GAP}{_ENTRY}{_GAP})*+)?+\}}")
# One entry and the separator after it; in a body of the shape above with some
# entries, successive matches from just after `{` cover it exactly. (With none,
# a search would find "entries" in comments.)
_PAIR = re.compile(rf"{_GAP}({_WORD})(?:{_GAP}:{_GAP}({_WEIGHT}))?+{_GAP}[,}}]")
_PLACED = re.compile(rf"{_GAP}(?P<entry>{_ENTRY}){_GAP}[,}}]")  # the same, for positions


def split(body: str, line: int, column: int) -> tuple[tuple, Sequence[Span]] | None:
    """The (word, weight) entries of `body`, the text of a TABLE_BODY token at
    line:column (weight None in a set), and their positions (worked out only if
    asked for); None when the body is not a well-formed entry list."""
    shape = _BODY.fullmatch(body)
    if shape is None:
        return None
    if shape["entries"] is None:
        return (), ()
    try:
        entries = tuple([(_word(w), float(x) if x else None) for w, x in _PAIR.findall(body, 1)])
    except ValueError:  # a bad escape in a quoted word
        return None
    if not all(math.isfinite(x) for _, x in entries if x is not None):
        return None
    return entries, _Spans(body, line, column)


def _word(text: str) -> str:
    return json.loads(text) if text[0] == '"' else text


class _Spans(Sequence):
    """Where each entry of a body is, as Lark counts (only "\\n" starts a line;
    columns are 1-based, an end column is one past the end). Only error messages
    need these, so they are worked out on first use."""

    def __init__(self, body: str, line: int, column: int):
        self.body, self.line, self.column = body, line, column
        self.spans: list[Span] | None = None

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, k):
        return self._all()[k]

    def _all(self) -> list[Span]:
        if self.spans is None:
            newlines = [k for k, c in enumerate(self.body) if c == "\n"]
            self.spans = [Span(*self._at(m.start("entry"), newlines), *self._at(m.end("entry"), newlines))
                          for m in _PLACED.finditer(self.body, 1)]
        return self.spans

    def _at(self, offset: int, newlines: list[int]) -> tuple[int, int]:
        k = bisect.bisect_left(newlines, offset)
        if k == 0:
            return self.line, self.column + offset
        return self.line + k, offset - newlines[k - 1]
