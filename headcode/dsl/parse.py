"""Text to surface syntax (`headcode.dsl.syntax`), with positions.

Text is read by one of two parsers that give the same syntax, spans included:

* `headcode.dsl.fastparse`, a hand-written parser for plain, well-formed text (a whole
  word table is one token for it); it reads a program library many times faster;
* the Lark LALR parser built (once, in `headcode.dsl.terminals`) from the
  committed `grammar.lark`, the definition of the language. It reads whatever the fast parser declines, so
  every error (message, line and column) comes from it.

There is one grammar: the fast parser takes its terminals from grammar.lark too.
It is kept because Lark, even in its fastest configuration (an internal
transformer, no tree), reads the bundled library about 5x slower
(benchmarks/parse.py).

Whatever the input, this module raises only `DslError`, always with a line and
column: Lark's own exceptions are translated, and nesting is bounded before the
(recursive) tree transformation so hostile input cannot exhaust the stack.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import lark
from lark import Token, Transformer, Tree, v_args

from headcode.dsl import fastparse, terminals
from headcode.dsl import syntax as s
from headcode.dsl.errors import Diagnostic, DslError, Span

# The surface tree may be at most this deep; the checker applies the (much
# smaller) semantic depth limit afterwards with a better message.
MAX_SYNTAX_DEPTH = 200

# Readable names for the grammar's terminals in "expected ..." messages.
_TERMINALS = {
    "NAME": "a name",
    "DEFNAME": "a program name",
    "NUMBER": "a number",
    "SIGNED_WEIGHT": "a weight",
    "STRING": "a quoted word",
    "CMPOP": "a comparison",
    "SIGN": "'+' or '-'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "_ELSE": "'else'",
    "_OR": "'or'",
    "_AND": "'and'",
    "_NOT": "'not'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "STAR": "'*'",
    "EQUAL": "'='",
    "$END": "end of input",
}


def _parser() -> lark.Lark:
    return terminals.PARSER


def parse_expression(text: str) -> s.Node:
    """Parse one program (an expression) into surface syntax."""
    return _syntax(text, "program")[0]


def parse_file(text: str) -> tuple[s.Definition, ...]:
    """Parse a program file: `name = expr` definitions and `#` comments."""
    return tuple(_attach_comments(text, _syntax(text, "file")))


# A line ends with "\n" (or "\r\n"). Any other character that some tool reads as a
# line break (Python's str.splitlines does for all of these) would let a comment end
# for one reader and not for another, so it is refused wherever it stands.
_OTHER_BREAKS = re.compile("\r(?!\n)|[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SHOWN = 10  # such characters reported by position, at most


def _refuse_other_line_breaks(text: str) -> None:
    found = list(itertools.islice(_OTHER_BREAKS.finditer(text), _SHOWN + 1))
    if not found:
        return
    diagnostics = []
    for m in found[:_SHOWN]:
        start = text.rfind("\n", 0, m.start()) + 1
        diagnostics.append(Diagnostic(text.count("\n", 0, m.start()) + 1, m.start() - start + 1,
                                      f"{m.group()!r} is not a line break here: lines end with \\n (or \\r\\n)"))
    if len(found) > _SHOWN:
        diagnostics[-1] = Diagnostic(diagnostics[-1].line, diagnostics[-1].column,
                                     diagnostics[-1].message + " (and more like it)")
    raise DslError(diagnostics, text)


def _syntax(text: str, start: str) -> list:
    """The children of the start rule, as syntax nodes."""
    if not isinstance(text, str):
        raise TypeError(f"program text must be a str, not {type(text).__name__}")
    _refuse_other_line_breaks(text)
    nodes = fastparse.parse(text, start)
    if nodes is not None:
        return nodes
    return _transform(_parse(text, start), text).children


def _parse(text: str, start: str) -> Tree:
    try:
        tree = _parser().parse(text, start=start)
    except lark.exceptions.UnexpectedInput as err:
        raise DslError([_describe(err, text)], text) from None
    except lark.exceptions.LarkError as err:  # pragma: no cover - defensive
        raise DslError([Diagnostic(1, 1, f"cannot parse: {err}")], text) from None
    _check_depth(tree, text)
    return tree


def _describe(err: lark.exceptions.UnexpectedInput, text: str) -> Diagnostic:
    line = max(getattr(err, "line", 1) or 1, 1)
    column = max(getattr(err, "column", 1) or 1, 1)
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        char = text[err.pos_in_stream] if 0 <= err.pos_in_stream < len(text) else "?"
        return Diagnostic(line, column, f"unexpected character {char!r}")
    # A sketch's `?` fits almost anywhere a number does; naming it in every message would be noise.
    expected = sorted({_TERMINALS.get(t, repr(t)) for t in getattr(err, "expected", ()) or ()
                       if t not in ("HOLE", "OPEN_TABLE")})
    wanted = f"; expected {', '.join(expected[:8])}" if expected else ""
    if isinstance(err, lark.exceptions.UnexpectedEOF) or (
        isinstance(err, lark.exceptions.UnexpectedToken) and err.token.type == "$END"
    ):
        line, column = _end_position(text)
        return Diagnostic(line, column, f"unexpected end of input{wanted}")
    token = getattr(err, "token", None)
    shown = repr(str(token)) if token is not None else "input"
    return Diagnostic(line, column, f"unexpected {shown}{wanted}")


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _check_depth(tree: Tree, text: str) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SYNTAX_DEPTH:
            meta = node.meta
            line = getattr(meta, "line", 1)
            column = getattr(meta, "column", 1)
            raise DslError(
                [Diagnostic(line, column, f"program nested too deeply (over {MAX_SYNTAX_DEPTH} levels)")],
                text,
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _span(meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


def _word(token: Token) -> str:
    if token.type == "STRING":
        try:
            return json.loads(str(token))
        except ValueError:
            raise _TokenError(token, "bad escape in quoted word (use \\\" \\\\ \\n \\t or \\uXXXX)")
    return str(token)


class _TokenError(Exception):
    def __init__(self, token: Token, message: str):
        self.token, self.message = token, message


def _transform(tree: Tree, text: str):
    try:
        return _ToSyntax().transform(tree)
    except lark.exceptions.VisitError as err:
        inner = err.orig_exc
        if isinstance(inner, _TokenError):
            t = inner.token
            raise DslError([Diagnostic(t.line, t.column, inner.message)], text) from None
        raise


@v_args(meta=True)
class _ToSyntax(Transformer):
    """Lark tree -> syntax nodes. Rule names are the aliases in grammar.lark."""

    def number(self, meta, children):
        (tok,) = children
        return s.Number(str(tok), span=_span(meta))

    def hole(self, meta, children):
        return s.Hole(span=_span(meta))

    def open_table(self, meta, children):
        side, attr, limit = children
        return s.OpenTable(str(side), str(attr), str(limit)[1:], span=_span(meta))

    def name(self, meta, children):
        return s.Name(str(children[0]), span=_span(meta))

    def true(self, meta, children):
        return s.Bool(True, span=_span(meta))

    def false(self, meta, children):
        return s.Bool(False, span=_span(meta))

    def call(self, meta, children):
        name, *args = children
        return s.Call(str(name), tuple(a for a in args if a is not None), span=_span(meta))

    def attr(self, meta, children):
        side, attr = children
        return s.Attr(str(side), str(attr), span=_span(meta))

    def table(self, meta, children):
        side, attr, *entries = children  # ((word, weight), span) each
        return s.TableLit(str(side), str(attr), tuple(e for e, _ in entries), span=_span(meta),
                          entry_spans=tuple(where for _, where in entries))

    def set_entry(self, meta, children):
        (word,) = children
        return (_word(word), None), _span(meta)

    def weighted_entry(self, meta, children):
        word, weight = children
        value = float(str(weight))
        if not math.isfinite(value):
            raise _TokenError(weight, f"weight {str(weight)!r} is not a finite number")
        return (_word(word), value), _span(meta)

    def hole_entry(self, meta, children):
        word, _ = children
        return (_word(word), s.HOLE), _span(meta)

    def negate(self, meta, children):
        sign, arg = children
        return s.Negate(arg, minus=str(sign) == "-", span=_span(meta))

    def not_expr(self, meta, children):
        return s.Not(children[-1], span=_span(meta))

    def comparison(self, meta, children):
        left, op, right = children
        return s.Compare(left, str(op), right, span=_span(meta))

    def sum_chain(self, meta, children):
        items = [("+", children[0])]
        for sign, node in zip(children[1::2], children[2::2]):
            items.append((str(sign), node))
        return s.SumChain(tuple(items), span=_span(meta))

    def product_chain(self, meta, children):
        return s.ProductChain(tuple(children), span=_span(meta))

    def and_chain(self, meta, children):
        return s.AndChain(tuple(children), span=_span(meta))

    def or_chain(self, meta, children):
        return s.OrChain(tuple(children), span=_span(meta))

    def else_chain(self, meta, children):
        return s.ElseChain(tuple(children), span=_span(meta))

    def definition(self, meta, children):
        name, body = children
        return s.Definition(str(name), body, span=_token_span(name))


def _attach_comments(text: str, definitions) -> list[s.Definition]:
    """Give each definition the block of full-line `#` comments directly above it.

    Comments are not part of a program's meaning, but `headcode fmt` must keep the
    ones people write to document their programs.
    """
    lines = text.splitlines()
    out = []
    for d in definitions:
        comments: list[str] = []
        row = d.span.line - 2  # index of the line above the definition
        while row >= 0 and lines[row].strip().startswith("#"):
            comments.insert(0, lines[row].strip())
            row -= 1
        out.append(s.Definition(d.name, d.body, tuple(comments), span=d.span))
    return out
