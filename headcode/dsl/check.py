"""Surface syntax to typed core IR, reporting every problem with its position.

The checker gives the generic syntax its meaning by context: the same text
`key.punct` is a condition inside `nearest(...)`, a score factor inside
`softmax(...)` and a pattern (uniform over punctuation keys) on its own. It keeps
going after an error (with a harmless placeholder) so that one run reports all
problems: unknown names, wrong arity or argument kind, negative mixture weights,
out-of-range numbers, and programs that are too large or too deep.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

from headcode.dsl import ir
from headcode.dsl import syntax as s
from headcode.dsl.errors import Diagnostic, DslError, Span, error_at
from headcode.dsl.features import (
    MAX_DEPTH,
    MAX_FALLBACKS,
    MAX_NODES,
    MAX_OFFSET,
    MAX_TABLE,
    MAX_TERMS,
    MAX_WEIGHT,
    CmpOp,
    Distance,
    Feature,
    Side,
    TokenClass,
)
from headcode.dsl.lexicon import normalise, text_problem
from headcode.dsl.sugar import DISTANCES, PATTERNS, SELECTORS, Named, Param
from headcode.dsl.validate import factor_problems

_SIDES = {side.value: side for side in Side}
_FEATURES = {f.value: f for f in Feature}
_CLASSES = {c.value: c for c in TokenClass}
_OPS = {op.value: op for op in CmpOp}
_FLIPPED = {CmpOp.EQ: CmpOp.EQ, CmpOp.NE: CmpOp.NE, CmpOp.LT: CmpOp.GT,
            CmpOp.GT: CmpOp.LT, CmpOp.LE: CmpOp.GE, CmpOp.GE: CmpOp.LE}

_PLACEHOLDER_SEL = ir.Const(True)
_PLACEHOLDER = ir.Select(_PLACEHOLDER_SEL, ir.Reduce.UNIFORM)


def check(node: s.Node, source: str = "") -> ir.Pattern:
    """Check one program's syntax; raise DslError listing every problem."""
    checker = _Checker()
    pattern = checker.pattern(node)
    checker.limits(pattern, getattr(node, "span", None))
    if checker.diagnostics:
        raise DslError(checker.diagnostics, source)
    return pattern


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class _Checker:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def fail(self, node, message: str) -> None:
        self.fail_at(getattr(node, "span", None), message)

    def fail_at(self, span: Span | None, message: str) -> None:
        self.diagnostics.append(error_at(span, message))

    def limits(self, pattern: ir.Pattern, span: Span | None) -> None:
        if (n := ir.size(pattern)) > MAX_NODES:
            self.diagnostics.append(error_at(span, f"program too large: {n} nodes (limit {MAX_NODES})"))
        if (d := ir.depth(pattern)) > MAX_DEPTH:
            self.diagnostics.append(error_at(span, f"program too deep: {d} levels (limit {MAX_DEPTH})"))

    # --- patterns -------------------------------------------------------------------

    def pattern(self, node: s.Node) -> ir.Pattern:
        if isinstance(node, s.ElseChain):
            if len(node.items) > MAX_FALLBACKS:
                self.fail(node, f"too many 'else' alternatives: {len(node.items)} (limit {MAX_FALLBACKS})")
            return ir.Fallback(tuple(self.pattern(item) for item in node.items))
        if isinstance(node, (s.SumChain, s.ProductChain)):
            return self.mixture(node)
        if isinstance(node, s.Negate):
            self.fail(node, "mixture weights must be non-negative (for negative scores use softmax(...))")
            return _PLACEHOLDER
        if isinstance(node, s.Number):
            self.fail(node, f"a number on its own is not a pattern; write a weight times a pattern, e.g. {node.text}*bos")
            return _PLACEHOLDER
        if isinstance(node, s.Hole):
            self.fail(node, "a '?' on its own is not a pattern; it stands for a weight, e.g. ?*bos")
            return _PLACEHOLDER
        if isinstance(node, (s.Name, s.Call)):
            return self.named_pattern(node)
        return ir.Select(self.selector(node), ir.Reduce.UNIFORM)

    def mixture(self, node: s.SumChain | s.ProductChain) -> ir.Pattern:
        items = node.items if isinstance(node, s.SumChain) else (("+", node),)
        if len(items) > MAX_TERMS:
            self.fail(node, f"too many mixture terms: {len(items)} (limit {MAX_TERMS})")
        terms = []
        for sign, item in items:
            if sign == "-":
                self.fail(item, "mixture weights must be non-negative (for negative scores use softmax(...))")
            weight, parts = self.split_weight(item)
            if not isinstance(weight, ir.Hole) and weight < 0:
                self.fail(item, "mixture weights must be non-negative (for negative scores use softmax(...))")
            if len(parts) != 1:
                self.fail(item, "a mixture term is a weight times one pattern, e.g. 0.7*prev(1)")
                terms.append(ir.Weighted(1.0, _PLACEHOLDER))
                continue
            terms.append(ir.Weighted(weight if isinstance(weight, ir.Hole) else abs(weight), self.pattern(parts[0])))
        holes = [isinstance(t.weight, ir.Hole) for t in terms]
        if any(holes) and not all(holes):
            # Mixture weights are shares of one whole: fitting some and fixing others has no clear meaning.
            self.fail(node, "a mixture's weights are all numbers or all '?' (e.g. ?*prev(1) + ?*bos)")
        elif terms and not any(holes) and sum(t.weight for t in terms) <= 0:
            self.fail(node, "mixture weights sum to zero")
        return ir.Mix(tuple(terms))

    def split_weight(self, node: s.Node) -> tuple[ir.Weight, list[s.Node]]:
        """A product's numeric factors multiplied into one weight, and the rest. A
        hole among them makes the weight a hole (a number times a free number is a
        free number, whatever its sign)."""
        weight, parts, hole = 1.0, [], False
        for item in node.items if isinstance(node, s.ProductChain) else (node,):
            sign = 1.0
            while isinstance(item, s.Negate):
                sign = -sign if item.minus else sign
                item = item.arg
            if isinstance(item, s.Number):
                weight *= sign * item.value
            elif isinstance(item, s.Hole):
                hole = True
            else:
                weight *= sign
                parts.append(item)
        if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
            self.fail(node, f"weight out of range (|weight| <= {MAX_WEIGHT:g})")
            weight = 1.0
        return (ir.HOLE if hole else weight), parts

    def named_pattern(self, node: s.Name | s.Call) -> ir.Pattern:
        name = node.name
        if name in PATTERNS:
            return self.apply(PATTERNS[name], node) or _PLACEHOLDER
        if name in SELECTORS:
            return ir.Select(self.apply(SELECTORS[name], node) or _PLACEHOLDER_SEL, ir.Reduce.UNIFORM)
        self.unknown(node, "pattern")
        return _PLACEHOLDER

    def unknown(self, node: s.Name | s.Call, what: str) -> None:
        name = node.name
        if name in _CLASSES:
            self.fail(node, f"'{name}' is a token class: write key.{name} (a condition) or last({name}) (a pattern)")
        elif name in _FEATURES:
            self.fail(node, f"'{name}' is a token feature: write key.{name} or query.{name} in a comparison")
        elif name in DISTANCES:
            self.fail(node, f"'{name}' is a score term: use it inside softmax(...)")
        else:
            known = set(PATTERNS) | set(SELECTORS)
            self.fail(node, f"unknown {what} '{name}'{_suggest(name, known)}")

    def apply(self, named: Named, node: s.Name | s.Call):
        args = node.args if isinstance(node, s.Call) else ()
        signature = named.signature_for(len(args))
        if signature is None:
            self.fail(node, f"{named.name} takes {named.usage()}, got {len(args)} argument(s)")
            return None
        if named.name == "softmax":
            return self.score(args[0])
        values = [self.argument(kind, arg, named.name) for kind, arg in zip(signature, args)]
        if any(v is None for v in values):
            return None
        return named.build(*values)

    def argument(self, kind: Param, node: s.Node, owner: str):
        if kind is Param.SELECTOR:
            return self.selector(node)
        if kind is Param.CLASS:
            if isinstance(node, s.Name) and node.name in _CLASSES:
                return _CLASSES[node.name]
            shown = node.name if isinstance(node, s.Name) else "this"
            self.fail(node, f"{owner} expects a token class ({', '.join(_CLASSES)}), got {shown!r}"
                      + (_suggest(node.name, _CLASSES) if isinstance(node, s.Name) else ""))
            return None
        if isinstance(node, s.Hole) and kind is Param.RATE:
            return ir.HOLE  # decay(?): a rate to fit
        if isinstance(node, s.Negate) and isinstance(node.arg, s.Number) and node.minus:
            self.fail(node, f"{owner} expects {kind.value}, got -{node.arg.text}")
            return None
        if not isinstance(node, s.Number):
            self.fail(node, f"{owner} expects {kind.value}")
            return None
        if kind is Param.RATE:
            if not 0.0 < node.value <= 1.0:
                self.fail(node, f"{owner} expects a rate in (0, 1], got {node.text}")
                return None
            return node.value
        if not node.is_integer:
            self.fail(node, f"{owner} expects a whole number, got {node.text}")
            return None
        value, low = self.whole(node, node.text), 1 if kind is Param.WIDTH else 0
        if value is None:
            return None
        if not low <= value <= MAX_OFFSET:
            self.fail(node, f"{owner}({value}) is out of range ({low}..{MAX_OFFSET})")
            return None
        return value

    # --- selectors ------------------------------------------------------------------

    def selector(self, node: s.Node) -> ir.Selector:
        if isinstance(node, s.Bool):
            return ir.Const(node.value)
        if isinstance(node, s.Not):
            return ir.Not(self.selector(node.arg))
        if isinstance(node, s.AndChain):
            return ir.And(tuple(self.selector(i) for i in node.items))
        if isinstance(node, s.OrChain):
            return ir.Or(tuple(self.selector(i) for i in node.items))
        if isinstance(node, s.Compare):
            return self.compare(node)
        if isinstance(node, s.Attr):
            return self.class_atom(node)
        if isinstance(node, s.TableLit):
            return self.word_set(node)
        if isinstance(node, (s.Hole, s.OpenTable)):
            self.fail(node, "a '?' stands for a weight or a score table, not a condition")
            return _PLACEHOLDER_SEL
        if isinstance(node, (s.Name, s.Call)):
            if node.name in SELECTORS:
                return self.apply(SELECTORS[node.name], node) or _PLACEHOLDER_SEL
            if node.name in PATTERNS:
                self.fail(node, f"'{node.name}' is a pattern, not a condition")
            else:
                self.unknown(node, "condition")
            return _PLACEHOLDER_SEL
        self.fail(node, "expected a condition (a comparison, key.CLASS, a word set, and/or/not)")
        return _PLACEHOLDER_SEL

    def side(self, node: s.Attr | s.TableLit) -> Side | None:
        if node.side in _SIDES:
            return _SIDES[node.side]
        self.fail(node, f"unknown side '{node.side}': write key.{node.attr} or query.{node.attr}")
        return None

    def class_atom(self, node: s.Attr) -> ir.Selector:
        side = self.side(node)
        if node.attr in _CLASSES:
            return ir.Cls(side, _CLASSES[node.attr]) if side else _PLACEHOLDER_SEL
        if node.attr in _FEATURES:
            self.fail(node, f"{node.side}.{node.attr} is a number: compare it, e.g. key.pos == query.pos - 1")
        elif node.attr == "word":
            self.fail(node, f"{node.side}.word needs a set of words, e.g. {node.side}.word{{the, and}}")
        else:
            self.fail(node, f"unknown token class '{node.attr}'{_suggest(node.attr, list(_CLASSES) + list(_FEATURES))}")
        return _PLACEHOLDER_SEL

    def entries(self, node: s.TableLit) -> dict[str, float | str | None]:
        if node.attr != "word":
            self.fail(node, f"only word tables exist: write {node.side}.word{{...}}")
        if len(node.entries) > MAX_TABLE:
            self.fail(node, f"word table too large: {len(node.entries)} entries (limit {MAX_TABLE})")
        out: dict[str, float | str | None] = {}
        for k, (word, weight) in enumerate(node.entries):
            if (problem := text_problem(word)) is not None:
                self.fail_at(self.entry_span(node, k), problem)
                continue
            word = normalise(word)
            if word in out and weight is not None:
                self.fail_at(self.entry_span(node, k),
                             f"word {word!r} appears twice in this table (words are compared lower-cased)")
            if weight is not None and weight != s.HOLE and abs(weight) > MAX_WEIGHT:
                self.fail_at(self.entry_span(node, k), f"weight out of range (|weight| <= {MAX_WEIGHT:g})")
            out[word] = weight
        return out

    @staticmethod
    def entry_span(node: s.TableLit, k: int) -> Span | None:
        return node.entry_spans[k] if k < len(node.entry_spans) else None

    def word_set(self, node: s.TableLit) -> ir.Selector:
        side, entries = self.side(node), self.entries(node)
        if any(w is not None for w in entries.values()):
            self.fail(node, "a word table with weights is a score term (use it inside softmax); "
                            "as a condition write a set: key.word{the, and}")
        if side is None:
            return _PLACEHOLDER_SEL
        return ir.WordSet(side, tuple(sorted(entries)))

    def compare(self, node: s.Compare) -> ir.Selector:
        left, right = self.linear(node.left), self.linear(node.right)
        if left is None or right is None:
            return _PLACEHOLDER_SEL
        terms = dict(left[0])
        for ref, coef in right[0].items():
            terms[ref] = terms.get(ref, 0) - coef
        terms = {ref: c for ref, c in terms.items() if c}
        const = left[1] - right[1]  # the comparison is: sum(terms) + const OP 0
        op = _OPS[node.op]
        bad = "a comparison relates a key feature to a query feature plus a whole number, or one feature to a whole number"
        if len(terms) == 1:
            ((side, feature), coef), = terms.items()
            if abs(coef) != 1:
                self.fail(node, bad)
                return _PLACEHOLDER_SEL
            if not feature.ordinal:
                self.fail(node, "token ids are tokenizer-specific: compare key.tok with query.tok, "
                                "or use a word set such as key.word{the}")
                return _PLACEHOLDER_SEL
            value = -const if coef == 1 else const
            if not self.offset_ok(node, value):
                return _PLACEHOLDER_SEL
            return ir.Threshold(side, feature, op if coef == 1 else _FLIPPED[op], value)
        if len(terms) == 2:
            key = [(f, c) for (sd, f), c in terms.items() if sd is Side.KEY]
            query = [(f, c) for (sd, f), c in terms.items() if sd is Side.QUERY]
            if len(key) == 1 and len(query) == 1 and abs(key[0][1]) == 1 and key[0][1] == -query[0][1]:
                (kf, kc), (qf, _) = key[0], query[0]
                if kf.ordinal != qf.ordinal or (kf.ordinal and kf is not qf):
                    self.fail(node, f"key.{kf.value} cannot be compared with query.{qf.value}")
                    return _PLACEHOLDER_SEL
                # kc*(key - query) + const OP 0  ->  key OP' query - kc*const
                rel = ir.Rel(kf, op if kc == 1 else _FLIPPED[op], qf, -const if kc == 1 else const)
                if not kf.ordinal and (rel.op not in (CmpOp.EQ, CmpOp.NE) or rel.offset):
                    self.fail(node, "token ids can only be tested for equality (== or !=), without an offset")
                    return _PLACEHOLDER_SEL
                return rel if self.offset_ok(node, rel.offset) else _PLACEHOLDER_SEL
        self.fail(node, bad)
        return _PLACEHOLDER_SEL

    def whole(self, node: s.Node, digits: str) -> int | None:
        """The value of the whole number `digits` (in `node`), or None (reported) for one
        of more digits than Python converts to an int (sys.get_int_max_str_digits():
        4300), which no limit of the language needs."""
        try:
            return int(digits)
        except ValueError:
            self.fail(node, f"number too long: {len(digits):,} digits")
            return None

    def offset_ok(self, node: s.Node, offset: int) -> bool:
        if abs(offset) > MAX_OFFSET:
            self.fail(node, f"offset {offset} out of range (|offset| <= {MAX_OFFSET})")
            return False
        return True

    def linear(self, node: s.Node) -> tuple[dict[tuple[Side, Feature], int], int] | None:
        """A side of a comparison as {feature ref: coefficient} plus a constant."""
        if isinstance(node, s.Number):
            if not node.is_integer:
                self.fail(node, f"comparisons use whole numbers, got {node.text}")
                return None
            value = self.whole(node, node.text)
            return None if value is None else ({}, value)
        if isinstance(node, s.Attr):
            side = self.side(node)
            if node.attr not in _FEATURES:
                hint = " (classes are conditions on their own: key.punct)" if node.attr in _CLASSES else ""
                self.fail(node, f"'{node.attr}' is not a numeric feature ({', '.join(_FEATURES)}){hint}")
                return None
            return ({(side, _FEATURES[node.attr]): 1}, 0) if side else None
        if isinstance(node, s.Negate):
            inner = self.linear(node.arg)
            if inner is None or not node.minus:
                return inner
            return {r: -c for r, c in inner[0].items()}, -inner[1]
        if isinstance(node, s.SumChain):
            terms: dict[tuple[Side, Feature], int] = {}
            const = 0
            for sign, item in node.items:
                part = self.linear(item)
                if part is None:
                    return None
                k = -1 if sign == "-" else 1
                for r, c in part[0].items():
                    terms[r] = terms.get(r, 0) + k * c
                const += k * part[1]
            return terms, const
        self.fail(node, "a comparison side is a feature (key.pos, query.word, ...) plus or minus whole numbers")
        return None

    # --- score terms ----------------------------------------------------------------

    def score(self, node: s.Node) -> ir.Score:
        items = node.items if isinstance(node, s.SumChain) else (("+", node),)
        if len(items) > MAX_TERMS:
            self.fail(node, f"too many score terms: {len(items)} (limit {MAX_TERMS})")
        terms = []
        for sign, item in items:
            weight, parts = self.split_weight(item)
            factors = tuple(self.factor(p) for p in parts)
            for k, message in factor_problems(factors):
                self.fail(parts[k], message)
            if isinstance(weight, ir.Hole) and any(isinstance(f, ir.TABLE_TYPES) for f in factors):
                self.fail(item, "a word table's weights are its entries: write key.word{the: ?}, not ?*key.word{...}")
            elif not isinstance(weight, ir.Hole) and sign == "-":
                weight = -weight
            terms.append(ir.ScoreTerm(weight, tuple(f for f in factors if f is not None)))
        return ir.Score(tuple(terms))

    def factor(self, node: s.Node) -> ir.Factor | None:
        if isinstance(node, s.Name) and node.name in DISTANCES:
            return ir.Dist(Distance(node.name))
        if isinstance(node, s.TableLit):
            side, entries = self.side(node), self.entries(node)
            if all(w is None for w in entries.values()):
                return ir.WordSet(side, tuple(sorted(entries))) if side else None
            if any(w is None for w in entries.values()):
                self.fail(node, "give every word of a weighted table a weight (word: 1.0, or word: ? in a sketch)")
                return None
            table = tuple(sorted((w, ir.HOLE if x == s.HOLE else x) for w, x in entries.items()))
            return ir.WordTable(side, table) if side else None
        if isinstance(node, s.OpenTable):
            side = self.side(node)
            if node.attr != "word":
                self.fail(node, f"only word tables exist: write {node.side}.word{{?{node.limit}}}")
            limit = self.whole(node, node.limit)
            if limit is None:
                return None
            if not 1 <= limit <= MAX_TABLE:
                self.fail(node, f"an open word table holds 1..{MAX_TABLE} words, not {limit}")
                return None
            return ir.OpenTable(side, limit) if side else None
        if isinstance(node, (s.Name, s.Call)) and node.name in PATTERNS:
            self.fail(node, f"'{node.name}' is a pattern; score terms are conditions, dist, log_dist and word tables")
            return None
        if isinstance(node, (s.SumChain, s.ElseChain)):
            self.fail(node, "score terms multiply conditions, dist, log_dist and word tables; nested sums are not allowed")
            return None
        return self.selector(node)

