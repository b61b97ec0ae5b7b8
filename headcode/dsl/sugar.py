"""Named patterns and selectors: the registry of sugar over the core.

Each name expands to core IR (`headcode.dsl.ir`). The checker looks names up here
instead of dispatching on strings, and the printer uses `resugar_selector` /
`resugar_pattern` to print canonical core back in its named form, so that
`prev(1)` reads as `prev(1)` and not as the comparison it stands for.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from headcode.dsl import ir
from headcode.dsl.features import MAX_OFFSET, CmpOp, Feature, Side, TokenClass


class Param(enum.Enum):
    """Kinds of argument a named construct takes."""

    COUNT = "a whole number"  # prev(n): 0..MAX_OFFSET
    WIDTH = "a whole number of at least 1"  # window(w): 1..MAX_OFFSET
    RATE = "a rate in (0, 1]"  # decay(r)
    CLASS = "a token class"  # last(punct)
    SELECTOR = "a condition"  # uniform(key.punct)
    TERMS = "a sum of score terms"  # softmax(...)


@dataclass(frozen=True)
class Named:
    """A named construct: its accepted argument lists and how it expands."""

    name: str
    signatures: tuple[tuple[Param, ...], ...]
    build: Callable[..., object]
    doc: str

    def signature_for(self, count: int) -> tuple[Param, ...] | None:
        for sig in self.signatures:
            if len(sig) == count:
                return sig
        return None

    def usage(self) -> str:
        forms = []
        for sig in self.signatures:
            forms.append(self.name if not sig else f"{self.name}({', '.join(p.name.lower() for p in sig)})")
        return " or ".join(forms)


def _rel(feature: Feature, op: CmpOp, offset: int, other: Feature | None = None) -> ir.Rel:
    return ir.Rel(feature, op, other or feature, offset)


BOS = ir.Threshold(Side.KEY, Feature.POS, CmpOp.EQ, 0)
SELF = _rel(Feature.POS, CmpOp.EQ, 0)
SAME_TOKEN = ir.And((_rel(Feature.POS, CmpOp.LE, -1), _rel(Feature.TOK, CmpOp.EQ, 0)))
INDUCTION = _rel(Feature.PREV_TOK, CmpOp.EQ, 0, Feature.TOK)
SAME_WORD = _rel(Feature.WORD, CmpOp.EQ, 0)
SAME_SENT = _rel(Feature.SENT, CmpOp.EQ, 0)
TRUE = ir.Const(True)


def _prev(n: int) -> ir.Selector:
    return _rel(Feature.POS, CmpOp.EQ, -n)


def _window(w: int) -> ir.Selector:
    # Keys i-w+1 .. i; window(1) is self (the canonicaliser sees that through causality).
    return _rel(Feature.POS, CmpOp.GE, -(w - 1))


SELECTORS: dict[str, Named] = {
    n.name: n
    for n in (
        Named("bos", ((),), lambda: BOS, "the first position (key.pos == 0)"),
        Named("self", ((),), lambda: SELF, "the query's own position"),
        Named("prev", ((Param.COUNT,),), _prev, "the key n positions back (prev(0) is self)"),
        Named("window", ((Param.WIDTH,),), _window, "the last w positions, the query included"),
        Named("same_token", ((),), lambda: SAME_TOKEN, "earlier occurrences of the query's token"),
        Named("induction", ((),), lambda: INDUCTION, "keys right after an earlier occurrence of the query's token"),
        Named("same_word", ((),), lambda: SAME_WORD, "all pieces of the query's word"),
        Named("same_sent", ((),), lambda: SAME_SENT, "all tokens of the query's sentence"),
    )
}


def _select(reduce: ir.Reduce):
    return lambda sel: ir.Select(sel, reduce)


def _uniform(sel: ir.Selector = TRUE) -> ir.Pattern:
    return ir.Select(sel, ir.Reduce.UNIFORM)


def _decay(*args) -> ir.Pattern:
    sel, rate = (TRUE, args[0]) if len(args) == 1 else args
    return ir.Select(sel, ir.Reduce.DECAY, rate)


def _last(cls: TokenClass) -> ir.Pattern:
    return ir.Select(ir.Cls(Side.KEY, cls), ir.Reduce.NEAREST)


def _first(cls: TokenClass) -> ir.Pattern:
    return ir.Select(ir.Cls(Side.KEY, cls), ir.Reduce.EARLIEST)


PATTERNS: dict[str, Named] = {
    n.name: n
    for n in (
        Named("uniform", ((), (Param.SELECTOR,)), _uniform, "equal weight on every (selected) key"),
        Named("nearest", ((Param.SELECTOR,),), _select(ir.Reduce.NEAREST), "the latest selected key"),
        Named("earliest", ((Param.SELECTOR,),), _select(ir.Reduce.EARLIEST), "the first selected key"),
        Named("decay", ((Param.RATE,), (Param.SELECTOR, Param.RATE)), _decay,
              "weight rate**distance on (selected) keys"),
        Named("last", ((Param.CLASS,),), _last, "the latest key of a class, the query included"),
        Named("first", ((Param.CLASS,),), _first, "the first key of a class"),
        Named("word_start", ((),), lambda: ir.Select(SAME_WORD, ir.Reduce.EARLIEST),
              "the first piece of the query's word"),
        Named("sent_start", ((),), lambda: ir.Select(SAME_SENT, ir.Reduce.EARLIEST),
              "the first token of the query's sentence"),
        Named("softmax", ((Param.TERMS,),), None, "row-wise softmax of weighted score terms"),
    )
}

# Names that mean numbers inside softmax(...).
DISTANCES = {"dist", "log_dist"}


# --- resugaring (used by the printer) ------------------------------------------------

_NAMED_CONSTANTS = {
    BOS: "bos",
    SELF: "self",
    SAME_TOKEN: "same_token",
    INDUCTION: "induction",
    SAME_WORD: "same_word",
    SAME_SENT: "same_sent",
}


def resugar_selector(sel: ir.Selector) -> str | None:
    """The name a selector was written as, if it is exactly a named selector."""
    if sel in _NAMED_CONSTANTS:
        return _NAMED_CONSTANTS[sel]
    if isinstance(sel, ir.Rel) and sel.feature is Feature.POS and sel.other is Feature.POS:
        if sel.op is CmpOp.EQ and -MAX_OFFSET <= sel.offset < 0:
            return f"prev({-sel.offset})"
        if sel.op is CmpOp.GE and -MAX_OFFSET < sel.offset < 0:
            return f"window({1 - sel.offset})"
    return None


def resugar_pattern(pattern: ir.Select) -> str | None:
    """The named form of a `Select` that has one, else None (printed as core)."""
    sel, reduce = pattern.sel, pattern.reduce
    if reduce is ir.Reduce.UNIFORM:
        if sel == TRUE:
            return "uniform"
        return resugar_selector(sel)
    if reduce in (ir.Reduce.NEAREST, ir.Reduce.EARLIEST):
        if isinstance(sel, ir.Cls) and sel.side is Side.KEY:
            word = "last" if reduce is ir.Reduce.NEAREST else "first"
            return f"{word}({sel.cls.value})"
        if reduce is ir.Reduce.EARLIEST and sel == SAME_WORD:
            return "word_start"
        if reduce is ir.Reduce.EARLIEST and sel == SAME_SENT:
            return "sent_start"
    return None
