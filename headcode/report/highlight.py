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

from headcode.dsl import terminals

# The language's own terminals (grammar.lark, through headcode.dsl.terminals), so the
# colours follow the grammar; a word is then told apart by what it is and what follows.
_TOKEN = re.compile("|".join((
    f"(?P<m>{terminals.COMMENT})",
    f"(?P<q>{terminals.STRING})",
    f"(?P<n>{terminals.NUMBER})",
    f"(?P<h>{terminals.regex('OPEN_TABLE')}|{terminals.regex('HOLE')})",
    f"(?P<w>{terminals.NAME})",
    r"(?P<plain>[^\"#?\w]+|.)",
)), re.DOTALL)
_KEYWORDS = frozenset(terminals.KEYWORDS.values())
_SIDES = frozenset(("key", "query"))


def _span(match: re.Match) -> str:
    kind, text = match.lastgroup, match.group()
    if kind == "w":
        after = match.string[match.end():match.end() + 1]
        kind = ("k" if text in _KEYWORDS else "s" if text in _SIDES and after == "." else "c" if after == "("
                else "plain")
    text = html.escape(text, quote=False)
    return text if kind == "plain" else f'<span class="{kind}">{text}</span>'


def highlight(text: str) -> Markup:
    """`text` as escaped HTML, each number, keyword, call, key/query, string, hole and
    comment in a `<span class="KIND">`."""
    return Markup(_TOKEN.sub(_span, text))
