"""Program text as HTML with its parts marked for colouring (classes of `pre.program`
in static/report.css: n number, k keyword, c call, s key/query, q string, h hole, m
comment; names and punctuation stay plain, which keeps a 20,000-character program's
page small).

A lexer over the language's tokens, not a parser: the report only ever shows
canonical text that headcode printed, and a wrong colour is harmless where a wrong
parse would not be. Every piece of text is escaped (`html.escape`), so words of a
word table (`"<b>"` is a valid word) never become markup.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_TOKEN = re.compile(r"""
    (?P<m>\#[^\n]*)
  | (?P<q>"(?:[^"\\\n]|\\.)*")
  | (?P<n>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<h>\?\d*)
  | (?P<k>\b(?:else|or|and|not|true|false)\b)
  | (?P<s>\b(?:key|query)(?=\.))
  | (?P<c>[A-Za-z_]\w*(?=\())
  | (?P<plain>[A-Za-z_]\w*|[^"\#?\w]+|.)
""", re.VERBOSE | re.DOTALL)


def _span(match: re.Match) -> str:
    kind, text = match.lastgroup, html.escape(match.group(), quote=False)
    return text if kind == "plain" else f'<span class="{kind}">{text}</span>'


def highlight(text: str) -> Markup:
    """`text` as escaped HTML, each number, keyword, call, key/query, string, hole and
    comment in a `<span class="KIND">`."""
    return Markup(_TOKEN.sub(_span, text))
