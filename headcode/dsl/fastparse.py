"""The fast path of `headcode.dsl.parse`: a hand-written parser for plain, well-formed text.

The Lark LALR parser of grammar.lark is general, and builds a tree that is then
converted to syntax; on a program library (hundreds of programs of a thousand
tokens each) that was most of the load time. This parser builds the syntax nodes
directly, with the spans Lark gives them (`propagate_positions`): a node spans
from its first child to its last, anonymous tokens such as `not` and `)`
included; a parenthesised expression keeps its own span, but its parentheses
count for the node around it (Lark calls the wider extent the "container").

It is conservative: it accepts only text on which it cannot disagree with the
grammar and returns None for anything else (any error, and anything unusual: a
keyword where a name could be meant, a definition not at the start of its line,
deep nesting), so that the Lark parser decides and reports any problem as it
always did. tests/test_dsl_fast.py checks that the two agree, spans included.

Its tokens are the grammar's terminals, regexes read from grammar.lark
(`headcode.dsl.terminals`), so the language's words are written down once.
It is kept, rather than using Lark alone, because Lark's fastest configuration
(LALR with an internal transformer: no tree) is still about 5x slower on the
bundled library (benchmarks/parse.py).
"""

from __future__ import annotations

import bisect
import re

from headcode.dsl import entries as table_entries
from headcode.dsl import syntax as s
from headcode.dsl import terminals as t
from headcode.dsl.errors import Span

_TOKEN = re.compile(
    rf"(?P<skip>{'|'.join(t.IGNORED)})"  # blanks and comments
    rf"|(?P<number>{t.NUMBER})"
    rf"|(?P<word>{t.NAME})"  # or a keyword
    rf"|(?P<cmpop>{t.CMPOP})"  # (before "=")
    rf"|(?P<op>{'|'.join((t.SIGN, *t.PUNCTUATION))})"  # SIGN and the anonymous tokens
    rf"|(?P<table>{table_entries.TABLE_BODY})"  # a word table's body, in one piece
)
_DEFNAME = re.compile(t.DEFNAME)
_ELSE, _OR, _AND, _NOT, _TRUE, _FALSE = (t.KEYWORDS[k] for k in ("_ELSE", "_OR", "_AND", "_NOT", "TRUE", "FALSE"))
_KEYWORDS = frozenset(t.KEYWORDS.values())

MAX_NESTING = 40  # parentheses, arguments, `not`s and signs inside one another
MAX_DEPTH = 100  # syntax-tree levels (the general parser's limit is 200)


class _Unsure(Exception):
    """Not plain, valid text: leave it to the general parser."""


def parse(text: str, start: str) -> list | None:
    """The children of the start rule ("program": one expression, "file": the
    definitions) as syntax nodes, or None to leave the text to the general parser."""
    try:
        parser = _Parser(text)
        return parser.file() if start == "file" else [parser.program()]
    except (_Unsure, RecursionError):  # (RecursionError: called from deep in a stack already)
        return None


class _Parser:
    """Recursive descent over grammar.lark, one method per precedence level.

    Tokens are (kind, text, start, end). Each rule returns (node, start, end,
    depth): the syntax node (with its own span), the offsets of its container
    and the depth of its subtree.
    """

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.k = 0  # index of the next token
        self.nesting = 0
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    # --- tokens ---

    def peek(self) -> tuple[str, str, int, int] | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self) -> tuple[str, str, int, int]:
        token = self.peek()
        if token is None:
            raise _Unsure
        self.k += 1
        return token

    def take_op(self, op: str) -> tuple[str, str, int, int]:
        token = self.take()
        if token[0] != "op" or token[1] != op:
            raise _Unsure
        return token

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def at_keyword(self, keyword: str) -> bool:
        """Whether the next token is the keyword `keyword` (taking it if so)."""
        token = self.peek()
        if token is None or token[0] != "word" or token[1] != keyword:
            return False
        if self.text[token[3]:token[3] + 1] in (".", "-"):
            raise _Unsure  # in a file this could be a program name such as `and.x`
        self.k += 1
        return True

    # --- positions ---

    def span(self, start: int, end: int) -> Span:
        return Span(*self.position(start), *self.position(end))

    def position(self, offset: int) -> tuple[int, int]:
        """Line and column as Lark counts them (only "\\n" starts a line)."""
        k = bisect.bisect_left(self.newlines, offset)
        return k + 1, offset - (self.newlines[k - 1] if k else -1)

    def node(self, kind, args: tuple, start: int, end: int, children=(), **extra) -> tuple:
        """A new node from offset `start` to `end`, over the child results `children`."""
        depth = 1 + max((c[3] for c in children), default=0)
        if depth > MAX_DEPTH:
            raise _Unsure
        return kind(*args, span=self.span(start, end), **extra), start, end, depth

    # --- start rules ---

    def program(self) -> s.Node:
        node = self.expr()[0]
        if self.peek() is not None:
            raise _Unsure
        return node

    def file(self) -> list[s.Definition]:
        definitions = []
        while self.peek() is not None:
            definitions.append(self.definition())
        return definitions

    def definition(self) -> s.Definition:
        kind, _, start, _ = self.take()
        if kind != "word" or self.text[self.text.rfind("\n", 0, start) + 1:start].strip(" \t"):
            raise _Unsure  # not a name at the start of its line
        name = _DEFNAME.match(self.text, start)
        if name is None or name.group() in _KEYWORDS:
            raise _Unsure
        end = name.end()
        while self.peek() is not None and self.peek()[2] < end:  # the tokens of a name like L3.H7
            if self.take()[3] > end:
                raise _Unsure
        self.take_op("=")
        body = self.expr()[0]
        return s.Definition(name.group(), body, span=self.span(start, end))

    # --- expressions, loosest first ---

    def expr(self) -> tuple:
        return self.nested(self.elseexpr)

    def elseexpr(self) -> tuple:
        return self.chain(self.orexpr, _ELSE, s.ElseChain)

    def orexpr(self) -> tuple:
        return self.chain(self.andexpr, _OR, s.OrChain)

    def andexpr(self) -> tuple:
        return self.chain(self.notexpr, _AND, s.AndChain)

    def chain(self, operand, keyword: str, kind) -> tuple:
        items = [operand()]
        while self.at_keyword(keyword):
            items.append(operand())
        if len(items) == 1:
            return items[0]
        return self.node(kind, (tuple(i[0] for i in items),), items[0][1], items[-1][2], items)

    def notexpr(self) -> tuple:
        if self.at_keyword(_NOT):
            word = self.tokens[self.k - 1]
            arg = self.nested(self.notexpr)
            return self.node(s.Not, (arg[0],), word[2], arg[2], [arg])
        return self.compare()

    def compare(self) -> tuple:
        left = self.sum()
        op = self.peek()
        if op is None or op[0] != "cmpop":
            return left
        self.k += 1
        right = self.sum()
        return self.node(s.Compare, (left[0], op[1], right[0]), left[1], right[2], [left, right])

    def sum(self) -> tuple:
        items = [("+", self.product())]
        while self.at_op("+", "-"):
            items.append((self.take()[1], self.product()))
        if len(items) == 1:
            return items[0][1]
        children = [i for _, i in items]
        return self.node(s.SumChain, (tuple((sign, i[0]) for sign, i in items),),
                         children[0][1], children[-1][2], children)

    def product(self) -> tuple:
        items = [self.unary()]
        while self.at_op("*"):
            self.take()
            items.append(self.unary())
        if len(items) == 1:
            return items[0]
        return self.node(s.ProductChain, (tuple(i[0] for i in items),), items[0][1], items[-1][2], items)

    def unary(self) -> tuple:
        if self.at_op("+", "-"):
            sign = self.take()
            arg = self.nested(self.unary)
            return self.node(s.Negate, (arg[0],), sign[2], arg[2], [arg], minus=sign[1] == "-")
        return self.atom()

    def nested(self, rule) -> tuple:
        """`rule()`, one level deeper (the recursion is bounded, not the text)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise _Unsure
        result = rule()
        self.nesting -= 1
        return result

    def atom(self) -> tuple:
        token = self.take()
        kind, text, start, end = token
        if kind == "number":
            return self.node(s.Number, (text,), start, end)
        if kind == "op" and text == "(":
            inner = self.expr()
            close = self.take_op(")")
            return inner[0], start, close[3], inner[3]  # the parentheses widen the container only
        if kind != "word" or text in (_ELSE, _OR, _AND, _NOT):
            raise _Unsure
        if text in (_TRUE, _FALSE):
            return self.node(s.Bool, (text == _TRUE,), start, end)
        if self.at_op("("):
            return self.call(token)
        if self.at_op("."):
            return self.attribute(token)
        return self.node(s.Name, (text,), start, end)

    def call(self, name: tuple) -> tuple:
        self.take()
        args = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.take()
                args.append(self.expr())
        close = self.take_op(")")
        return self.node(s.Call, (name[1], tuple(a[0] for a in args)), name[2], close[3], args)

    def attribute(self, side: tuple) -> tuple:
        self.take()
        attr = self.take()
        if attr[0] != "word" or attr[1] in _KEYWORDS:
            raise _Unsure
        body = self.peek()
        if body is None or body[0] != "table":
            return self.node(s.Attr, (side[1], attr[1]), side[2], attr[3])
        self.take()
        split = table_entries.split(body[1], *self.position(body[2]))
        if split is None:
            raise _Unsure
        entries, where = split
        # One level more in the general parser's tree: its entries are nodes.
        return self.node(s.TableLit, (side[1], attr[1], entries), side[2], body[3],
                         [(None, 0, 0, 1)] if entries else (), entry_spans=where)


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) of every token; blanks and comments dropped."""
    tokens, pos, n = [], 0, len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            raise _Unsure
        kind, end = m.lastgroup, m.end()
        if kind != "skip":
            tokens.append((kind, m.group(), pos, end))
        pos = end
    return tokens
