"""A program in one plain sentence, and the family of heads it belongs to.

Both are read off the canonical tree by fixed rules (no model, no LLM), so the same
program always gets the same words:

    >>> from headcode.dsl import Program
    >>> describe(Program.of("softmax(4*bos + 1.2*key.punct - 0.7*log_dist)"))
    'Mostly the first token, then punctuation; prefers nearby keys.'
    >>> family(Program.of("softmax(4*bos + 1.2*key.punct - 0.7*log_dist)"))
    <Family.SINK: 'sink'>

The family rule (docs/dsl.md, "Descriptions and families"). Every atom a program
attends by is given a family: `bos` and early positions are SINK, `prev(n)`
PREVIOUS, `self` SELF, punctuation classes (`punct`, `comma`, `sent_end`, `quote`,
`newline`) PUNCTUATION, `induction` INDUCTION, `same_token`, `same_word` and word
starts SAME_TOKEN, distances, windows, decays, `uniform` and sentence structure
POSITIONAL, and words (tables, sets) and the other classes (`cap`, `digit`,
`closed`, `word_initial`) CONTENT. Each atom carries a weight: its share of a
mixture; for an `else` chain the first option's (it decides most rows); in a
softmax the term's positive weight (a negative one repels, it does not attend),
a word table's largest positive entry, and a distance term's |weight| times
log(1 + 16) or 16 (a distance of 16 tokens). The family is the one with more than
half of the total weight; with no such family, MIXED.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict

from headcode.dsl import ir
from headcode.dsl.features import CmpOp, Distance, Feature, Side, TokenClass
from headcode.dsl.printer import number, show, word
from headcode.dsl.program import Program
from headcode.dsl.sugar import BOS, SELF, resugar_selector


class Family(enum.Enum):
    SINK = "sink"
    PREVIOUS = "previous token"
    SELF = "self"
    PUNCTUATION = "punctuation/delimiter"
    INDUCTION = "induction/copy"
    SAME_TOKEN = "same token or word"
    POSITIONAL = "positional/recency"
    CONTENT = "content/lexical"
    MIXED = "mixed"


TYPICAL_DISTANCE = 16  # distance terms are weighed at this many tokens back
_PUNCTUATION = {TokenClass.PUNCT, TokenClass.COMMA, TokenClass.SENT_END, TokenClass.QUOTE, TokenClass.NEWLINE}
_NAMED_FAMILY = {
    "bos": Family.SINK, "self": Family.SELF, "same_token": Family.SAME_TOKEN, "induction": Family.INDUCTION,
    "same_word": Family.SAME_TOKEN, "same_sent": Family.POSITIONAL,
}
_CLASS_NOUN = {
    TokenClass.PUNCT: "punctuation", TokenClass.COMMA: "commas", TokenClass.SENT_END: "sentence ends",
    TokenClass.QUOTE: "quotation marks", TokenClass.NEWLINE: "line breaks", TokenClass.CAP: "capitalised words",
    TokenClass.DIGIT: "numbers", TokenClass.CLOSED: "function words", TokenClass.WORD_INITIAL: "word starts",
}
_CLASS_SINGULAR = {
    TokenClass.PUNCT: "punctuation mark", TokenClass.COMMA: "comma", TokenClass.SENT_END: "sentence end",
    TokenClass.QUOTE: "quotation mark", TokenClass.NEWLINE: "line break", TokenClass.CAP: "capitalised word",
    TokenClass.DIGIT: "number", TokenClass.CLOSED: "function word", TokenClass.WORD_INITIAL: "word start",
}


# --- family --------------------------------------------------------------------------


def family(program: Program) -> Family:
    """The program's family by the rule of the module docstring."""
    program.require_filled("be described")  # the rule weighs the program's numbers
    weights: dict[Family, float] = defaultdict(float)
    _weigh(program.ir, 1.0, weights)
    total = sum(weights.values())
    if total <= 0:
        return Family.MIXED
    best = max(weights, key=lambda f: (weights[f], f.value))
    return best if weights[best] > 0.5 * total else Family.MIXED


def _weigh(p: ir.Pattern, share: float, out: dict[Family, float]) -> None:
    if isinstance(p, ir.Select):
        if p.reduce is ir.Reduce.DECAY or p.sel == ir.Const(True):
            out[Family.POSITIONAL] += share
        elif p.reduce is ir.Reduce.EARLIEST and resugar_selector(p.sel) in ("same_word", "same_sent"):
            out[Family.SAME_TOKEN if resugar_selector(p.sel) == "same_word" else Family.POSITIONAL] += share
        else:
            _weigh_selector(p.sel, share, out)
    elif isinstance(p, ir.Fallback):
        _weigh(p.options[0], share, out)
    elif isinstance(p, ir.Mix):
        for t in p.terms:
            _weigh(t.pattern, share * t.weight, out)
    else:
        for t in p.terms:
            _weigh_term(t, share, out)


def _weigh_term(t: ir.ScoreTerm, share: float, out: dict[Family, float]) -> None:
    tables = [f for f in t.factors if isinstance(f, ir.WordTable)]
    dists = [f for f in t.factors if isinstance(f, ir.Dist)]
    if tables:
        strength = max((v for f in tables for _, v in f.entries), default=0.0)
    elif dists:
        strength = abs(t.weight) * math.prod(_typical(d) for d in dists)
    else:
        strength = t.weight
    if strength <= 0:
        return
    sels = [f for f in t.factors if isinstance(f, ir.SELECTOR_TYPES)]
    key_tables = [f for f in tables if f.side is Side.KEY]
    if key_tables or (tables and not sels and not dists):
        out[Family.CONTENT] += share * strength
    elif sels:
        for sel in sels:
            _weigh_selector(sel, share * strength / len(sels), out)
    else:
        out[Family.POSITIONAL] += share * strength


def _typical(d: ir.Dist) -> float:
    return TYPICAL_DISTANCE if d.kind is Distance.DIST else math.log1p(TYPICAL_DISTANCE)


def _weigh_selector(sel: ir.Selector, share: float, out: dict[Family, float]) -> None:
    atoms = [a for a in _atoms(sel) if not _query_side(a)] or _atoms(sel)
    for atom in atoms:
        out[_atom_family(atom)] += share / len(atoms)


def _atoms(sel: ir.Selector) -> list[ir.Selector]:
    if resugar_selector(sel) is not None:
        return [sel]
    if isinstance(sel, ir.Not):
        return _atoms(sel.arg)
    if isinstance(sel, (ir.And, ir.Or)):
        return [a for arg in sel.args for a in _atoms(arg)]
    return [sel]


def _query_side(sel: ir.Selector) -> bool:
    return isinstance(sel, (ir.Threshold, ir.Cls, ir.WordSet)) and sel.side is Side.QUERY


def _atom_family(sel: ir.Selector) -> Family:
    name = resugar_selector(sel)
    if name in _NAMED_FAMILY:
        return _NAMED_FAMILY[name]
    if name is not None and name.startswith("prev("):
        return Family.PREVIOUS
    if name is not None:  # window(w)
        return Family.POSITIONAL
    if isinstance(sel, ir.Cls):
        return Family.PUNCTUATION if sel.cls in _PUNCTUATION else Family.CONTENT
    if isinstance(sel, ir.WordSet):
        return Family.CONTENT
    if isinstance(sel, ir.Threshold) and sel.feature is Feature.POS and sel.op in (CmpOp.LE, CmpOp.EQ) \
            and sel.value <= 4:
        return Family.SINK
    return Family.POSITIONAL


# --- the sentence ----------------------------------------------------------------------


def describe(program: Program) -> str:
    """One plain sentence saying what the program attends to."""
    program.require_filled("be described")  # the sentence weighs the program's numbers
    text = _pattern(program.ir)
    return text[0].upper() + text[1:] + "."


def _pattern(p: ir.Pattern) -> str:
    if isinstance(p, ir.Select):
        return _select(p)
    if isinstance(p, ir.Fallback):
        *first, last = p.options
        body = "; else ".join(_pattern(o) for o in first)
        return f"{body}; otherwise {_pattern(last)}" if last != ir.Select(BOS, ir.Reduce.UNIFORM) or first else body
    if isinstance(p, ir.Mix):
        if sum(isinstance(t.pattern, ir.Score) for t in p.terms) > 1:  # too much for one sentence: the main part
            head, rest = p.terms[0], len(p.terms) - 1
            return f"{round(100 * head.weight)}%: {_pattern(head.pattern)}; {rest} more softmax{'es' if rest > 1 else ''}"
        # A fallback inside a component is joined with commas, so that the share
        # after it reads as the whole component's, not its last option's.
        parts = [f"{_pattern(t.pattern).replace('; ', ', ')} ({round(100 * t.weight)}%)" for t in p.terms]
        if p.terms[0].weight >= 0.6:
            return f"mostly {parts[0]}; also " + _and(parts[1:])
        return _and(parts)
    return _score(p)


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _select(p: ir.Select) -> str:
    name = resugar_selector(p.sel)
    if p.reduce is ir.Reduce.DECAY:
        where = "" if p.sel == ir.Const(True) else f" among {_keys(p.sel)}"
        return f"every earlier token{where}, fading by {number(p.rate)} per step back"
    if p.reduce is ir.Reduce.NEAREST:
        return f"the latest {_key(p.sel)}"
    if p.reduce is ir.Reduce.EARLIEST:
        if name == "same_word":
            return "the first piece of the query's word"
        if name == "same_sent":
            return "the first token of the query's sentence"
        return f"the first {_key(p.sel)}"
    if p.sel == ir.Const(True):
        return "every earlier token evenly"
    if name is not None:
        return _NAMED_KEYS.get(name) or _positional(name)
    return f"{_keys(p.sel)}, evenly"


_NAMED_KEYS = {
    "bos": "the first token", "self": "the token itself", "prev(1)": "the previous token",
    "same_token": "earlier copies of the query's token", "induction": "the token after an earlier copy of the query's token",
    "same_word": "the pieces of the query's word", "same_sent": "the query's sentence, evenly",
}


def _positional(name: str) -> str:
    k = int(name[name.index("(") + 1:-1])
    return f"the token {k} back" if name.startswith("prev(") else f"the last {k} tokens, evenly"


def _key(sel: ir.Selector) -> str:
    """A key a selector picks, in the singular: 'punctuation mark', 'key where ...'."""
    if isinstance(sel, ir.Cls) and sel.side is Side.KEY:
        return _CLASS_SINGULAR[sel.cls]
    if isinstance(sel, ir.WordSet) and sel.side is Side.KEY:
        return f"of the words {_words(sel.words)}"
    return f"key where `{show(sel)}`"


def _keys(sel: ir.Selector) -> str:
    """The keys a selector picks, in the plural."""
    if isinstance(sel, ir.Cls) and sel.side is Side.KEY:
        return _CLASS_NOUN[sel.cls]
    if isinstance(sel, ir.WordSet) and sel.side is Side.KEY:
        return f"the words {_words(sel.words)}"
    return f"keys where `{show(sel)}`"


def _words(words, limit: int = 4) -> str:
    shown = ", ".join(word(w) for w in list(words)[:limit])
    return shown + (", ..." if len(words) > limit else "")


def _score(p: ir.Score) -> str:
    """Attractions in order of strength, then what is avoided and how distance counts."""
    attract, avoid, distance = [], [], []
    for t in p.terms:
        tables = [f for f in t.factors if isinstance(f, ir.WordTable)]
        dists = [f for f in t.factors if isinstance(f, ir.Dist)]
        rest = tuple(f for f in t.factors if not isinstance(f, (ir.WordTable, ir.Dist)))
        if dists and not rest and not tables:
            distance.append((abs(t.weight) * math.prod(_typical(d) for d in dists), t.weight < 0))
        elif tables:
            for table in tables:
                liked = [(v, w) for w, v in table.entries if v > 0]
                if liked:
                    attract.append((max(liked)[0], _table_phrase(table, rest, liked)))
        elif t.weight > 0:
            attract.append((t.weight, _factors(rest)))
        else:
            avoid.append((-t.weight, _factors(rest)))
    parts = []
    if attract:
        ranked = [phrase for _, phrase in sorted(attract, key=lambda a: -a[0])]
        lead = "mostly " if len(ranked) > 1 and sorted(attract)[-1][0] >= 2 * sorted(attract)[-2][0] else ""
        parts.append(lead + _then(ranked))
    if avoid:
        parts.append("avoids " + _then([phrase for _, phrase in sorted(avoid, key=lambda a: -a[0])], limit=2))
    if distance:
        _, nearer = max(distance)
        parts.append("prefers nearby keys" if nearer else "prefers distant keys")
    return "; ".join(parts) if parts else "every earlier token evenly"


def _then(phrases: list[str], limit: int = 3) -> str:
    shown = phrases[:limit]
    text = shown[0] + "".join(f", then {ph}" for ph in shown[1:])
    return text + (f" and {len(phrases) - limit} more" if len(phrases) > limit else "")


def _factors(factors: tuple) -> str:
    """What a term of conditions attends to: 'the first token', 'punctuation'."""
    if len(factors) == 1:
        f = factors[0]
        name = resugar_selector(f)
        if name is not None:
            return _NAMED_KEYS.get(name) or _positional(name)
        if isinstance(f, ir.Cls) and f.side is Side.KEY:
            return _CLASS_NOUN[f.cls]
        if f == SELF:
            return "the token itself"
    return f"`{show(ir.ScoreTerm(1.0, factors))}`"


def _table_phrase(table: ir.WordTable, rest: tuple, liked: list) -> str:
    words = _words([w for _, w in sorted(liked, key=lambda vw: (-vw[0], vw[1]))], limit=2)
    if table.side is Side.KEY:
        within = f" ({_factors(rest)})" if rest else ""
        return f"the words {words}{within}"
    target = _factors(rest) if rest else "every key"
    return f"{target} after the words {words}"
