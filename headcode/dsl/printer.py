"""IR to text: `show` prints one line, `pretty` breaks long programs over lines.

Named patterns are printed back in their named form (`prev(1)`, not the comparison
it stands for; see `headcode.dsl.sugar`). Parentheses are added exactly where the
grammar's precedence needs them, so printing and parsing again gives the same tree
(or, for a non-canonical tree, text that prints the same again).
"""

from __future__ import annotations

import functools
import json
import re

from headcode.dsl import ir, terminals
from headcode.dsl.parse import _OTHER_BREAKS
from headcode.dsl.sugar import resugar_pattern, resugar_selector

_BARE_WORD = re.compile(terminals.NAME)
HOLE = terminals.literal("HOLE")  # `?`  # a word the grammar reads bare (`?word: NAME | STRING`)

# Selector precedence: or < and < not < comparison < atom.
_OR, _AND, _NOT, _CMP, _ATOM = range(5)


def number(x: ir.Weight) -> str:
    """A non-negative number in the shortest text that parses back to the same float
    (a sketch's hole: `?`)."""
    if isinstance(x, ir.Hole):
        return HOLE
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def word(w: str) -> str:
    """A word as it is written in a set or table: bare if it is a name, else quoted.
    The line breaks that the parser refuses anywhere (`headcode.dsl.parse`) are written
    as escapes: JSON leaves U+0085, U+2028 and U+2029 as they are."""
    if _BARE_WORD.fullmatch(w):
        return w
    return _OTHER_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(w, ensure_ascii=False))


def _signed(x: ir.Weight) -> str:
    return f"-{number(-x)}" if not isinstance(x, ir.Hole) and x < 0 else number(x)


def show(node) -> str:
    """Any IR node as one line of DSL text."""
    if isinstance(node, ir.PATTERN_TYPES):
        return _pattern(node)
    if isinstance(node, ir.SELECTOR_TYPES):
        return _selector(node)[0]
    if isinstance(node, ir.ScoreTerm):
        return _term(node, first=True)
    return _factor(node)


# --- patterns --------------------------------------------------------------------


@functools.singledispatch
def _pattern(p) -> str:
    raise TypeError(f"not a pattern: {p!r}")


@_pattern.register
def _(p: ir.Select) -> str:
    named = resugar_pattern(p)
    if named is not None:
        return named
    inner = resugar_selector(p.sel) or _selector(p.sel)[0]
    if p.reduce is ir.Reduce.DECAY:
        if p.sel == ir.Const(True):
            return f"decay({number(p.rate)})"
        return f"decay({inner}, {number(p.rate)})"
    return f"{p.reduce.value}({inner})"


@_pattern.register
def _(p: ir.Fallback) -> str:
    return " else ".join(_parens(_pattern(o)) if isinstance(o, ir.Fallback) else _pattern(o) for o in p.options)


@_pattern.register
def _(p: ir.Mix) -> str:
    return " + ".join(_weighted(t) for t in p.terms)


def _weighted(t: ir.Weighted) -> str:
    body = _pattern(t.pattern)
    if isinstance(t.pattern, (ir.Fallback, ir.Mix)):
        body = _parens(body)
    return f"{number(t.weight)}*{body}"


@_pattern.register
def _(p: ir.Score) -> str:
    return f"softmax({_terms(p.terms, ' ')})"


def _terms(terms, gap: str) -> str:
    out = []
    for k, t in enumerate(terms):
        text = _term(t, first=(k == 0))
        out.append(text if k == 0 else f"{gap}{text}")
    return "".join(out)


def _term(t: ir.ScoreTerm, first: bool) -> str:
    hole = isinstance(t.weight, ir.Hole)
    sign = "-" if not hole and t.weight < 0 else "+"
    magnitude = t.weight if hole else abs(t.weight)
    factors = [_factor(f) for f in t.factors]
    if not factors:
        body = number(magnitude)
    elif not hole and magnitude == 1:
        body = "*".join(factors)
    else:
        body = "*".join([number(magnitude)] + factors)
    if first:
        return f"-{body}" if sign == "-" else body
    return f"{sign} {body}"


def _factor(f) -> str:
    if isinstance(f, ir.Dist):
        return f.kind.value
    if isinstance(f, ir.WordTable):
        return _table(f)
    if isinstance(f, ir.OpenTable):
        return f"{f.side.value}.word{{{HOLE}{f.limit}}}"
    text, level = _selector(f)
    return text if level == _ATOM else _parens(text)


def _table(t: ir.WordTable) -> str:
    entries = ", ".join([f"{word(w)}: {_signed(v)}" for w, v in t.entries])
    return f"{t.side.value}.word{{{entries}}}"


# --- selectors -------------------------------------------------------------------


def _selector(sel: ir.Selector) -> tuple[str, int]:
    """Text of a selector and its precedence level."""
    named = resugar_selector(sel)
    if named is not None:
        return named, _ATOM
    if isinstance(sel, ir.Const):
        return ("true" if sel.value else "false"), _ATOM
    if isinstance(sel, ir.Cls):
        return f"{sel.side.value}.{sel.cls.value}", _ATOM
    if isinstance(sel, ir.WordSet):
        return f"{sel.side.value}.word{{{', '.join(word(w) for w in sel.words)}}}", _ATOM
    if isinstance(sel, ir.Rel):
        right = f"query.{sel.other.value}"
        if sel.offset:
            right += f" {'-' if sel.offset < 0 else '+'} {abs(sel.offset)}"
        return f"key.{sel.feature.value} {sel.op.value} {right}", _CMP
    if isinstance(sel, ir.Threshold):
        return f"{sel.side.value}.{sel.feature.value} {sel.op.value} {sel.value}", _CMP
    if isinstance(sel, ir.Not):
        return f"not {_at_least(sel.arg, _NOT)}", _NOT
    if isinstance(sel, ir.And):
        return " and ".join(_at_least(a, _AND + 1) for a in sel.args), _AND
    return " or ".join(_at_least(a, _OR + 1) for a in sel.args), _OR


def _at_least(sel: ir.Selector, level: int) -> str:
    text, own = _selector(sel)
    return text if own >= level else _parens(text)


def _parens(text: str) -> str:
    return f"({text})"


# --- pretty printing -------------------------------------------------------------


def pretty(p: ir.Pattern, indent: int = 0, width: int = 88) -> str:
    """One line if it fits, else the top-level alternatives or terms one per line.

    The parts are printed once for both layouts (the line is exactly `show(p)`).
    """
    pad = " " * (indent + 2)
    if isinstance(p, ir.Fallback):
        parts = [_parens(_pattern(o)) if isinstance(o, ir.Fallback) else _pattern(o) for o in p.options]
        line, broken = " else ".join(parts), f"\n{pad}else ".join(parts)
    elif isinstance(p, ir.Mix):
        parts = [_weighted(t) for t in p.terms]
        line, broken = " + ".join(parts), f"\n{pad}+ ".join(parts)
    elif isinstance(p, ir.Score):
        parts = [_term(t, first=(k == 0)) for k, t in enumerate(p.terms)]
        line = f"softmax({' '.join(parts)})"
        broken = f"softmax(\n{pad}  " + f"\n{pad}".join(parts) + f"\n{' ' * indent})"
    else:
        return show(p)
    return line if indent + len(line) <= width else broken
