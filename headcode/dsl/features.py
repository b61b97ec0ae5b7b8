"""The token features a program may read, and the DSL's fixed limits.

This is the contract between the language and the token table: the DSL names these
features, the compiler's token table computes them once per sequence. Keeping the
vocabulary here (and not in the compiler) lets the checker validate programs
without importing anything else.
"""

from __future__ import annotations

import enum


class Side(enum.Enum):
    """Which token of a (query, key) pair an atom reads."""

    KEY = "key"
    QUERY = "query"


class Feature(enum.Enum):
    """Integer-valued token features.

    Ordinal features (pos, word, sent) are non-decreasing along the sequence, so
    causality (key position <= query position) implies key.F <= query.F; the
    canonicaliser relies on this. Token features (tok, prev_tok) are categorical:
    they may only be compared for (in)equality, and only with each other.
    """

    POS = "pos"  # position 0..n-1
    WORD = "word"  # index of the word the token belongs to
    SENT = "sent"  # index of the sentence the token belongs to
    TOK = "tok"  # token id
    PREV_TOK = "prev_tok"  # token id of the previous position (-1 at position 0)

    @property
    def ordinal(self) -> bool:
        return self in _ORDINAL


_ORDINAL = frozenset({Feature.POS, Feature.WORD, Feature.SENT})


class TokenClass(enum.Enum):
    """Boolean character classes of a token, from its surface text."""

    PUNCT = "punct"  # only punctuation or symbol characters
    COMMA = "comma"  # contains ','
    SENT_END = "sent_end"  # contains '.', '!' or '?'
    QUOTE = "quote"  # contains a quotation mark (straight, curly or mis-encoded)
    NEWLINE = "newline"  # contains a line break
    CAP = "cap"  # its first letter is upper case
    DIGIT = "digit"  # contains a digit
    CLOSED = "closed"  # a closed-class word (the lexicon in headcode.dsl.lexicon)
    WORD_INITIAL = "word_initial"  # first piece of a word


class CmpOp(enum.Enum):
    """Comparison operators. The canonical form uses only EQ, NE, LE and GE."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class Distance(enum.Enum):
    """Key-dependent numeric factors of score terms (d = query.pos - key.pos >= 0)."""

    DIST = "dist"  # d
    LOG_DIST = "log_dist"  # log(1 + d)


# --- limits (documented in docs/dsl.md; the checker enforces them) ---------------

MAX_OFFSET = 4096  # |c| in comparisons, n in prev(n), w in window(w)
MAX_NODES = 256  # syntax nodes in one program
MAX_DEPTH = 32  # nesting depth of one program
MAX_TERMS = 64  # terms of one mixture or one softmax
MAX_TABLE = 256  # entries of one word table
MAX_WEIGHT = 1000.0  # |weight| anywhere
MAX_FALLBACKS = 16  # alternatives in one `else` chain
# Factors of one score term: at most MAX_DISTANCES of dist/log_dist and one word table
# per side, so that a term is at most 1000 * 1000 * 1000 * d**2 in size and no
# logit can overflow float64 on any text (103 tables of weight 1000 would).
MAX_DISTANCES = 2

# Weights are rounded to multiples of 1/GRID in the canonical form.
GRID = 100
