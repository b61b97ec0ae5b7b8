"""The token table: per-token features, computed once per sequence, that programs read.

A `TokenTable` is built from character offsets into the original text (what a
Hugging Face *fast* tokenizer returns), or from a plain list of words. Its columns
are the DSL's vocabulary (`headcode.dsl.features`); what each one means is part of
the language's meaning, so it is spelled out here.

Integer features
  pos       0..n-1.
  tok       the token id.
  prev_tok  the id at position i-1; -1 at position 0.
  word      the number of word starts up to and including i, minus 1.
  sent      the number of sentence starts up to and including i, minus 1 (0 at i = 0).

Surfaces. A token's surface is `text[start:end]` (so "" for special tokens, whose
offsets are empty). Tokenizers disagree on where the space before a word goes:
byte-level BPE (GPT-2 `Ġthe`) and SentencePiece (`▁the`) put it inside the token,
and their offsets then include it or not depending on `trim_offsets`; WordPiece drops
it. The rules below look at the space wherever it is: inside the token, inside the
previous token, or in the gap of text between the two.

Classes (0/1), from the token's surface with white space stripped:
  punct     non-empty and every character is Unicode punctuation (P*) or a symbol (S*).
  comma     contains ','.
  sent_end  contains '.', '!' or '?'.
  quote     contains one of " ' “ ” ‘ ’ « ».
  newline   the raw (unstripped) surface contains '\\n'.
  cap       its first letter is upper case.
  digit     contains a digit (str.isdigit).
  closed    `lexicon.normalise(surface)` is in `lexicon.CLOSED_CLASS`.
  word_initial  the token starts a word (below).
Mis-encoded punctuation (UTF-8 read as Windows-1252, common in TinyStories: `â€œ`
for “, `â€™` for ’, `â€` for a ” whose last byte was lost, `â€”` for —) counts as
the mark it stands for. The sequence is found in the text, not in one token, because
byte-level tokenizers split it over several tokens (`Ġâ`, `€`, `œ`); every piece
then is punctuation, and a quote if the mark is one. (`â€”`, `â€“` and `â€¦` stand
for dashes and an ellipsis, so they are punctuation but not quotes.)

Words. Token 0 starts a word. Token i > 0 starts a word unless it continues one:
  1. a blank token (empty surface, as special tokens have, or only white space) is
     a word of its own, and so is the token after it;
  2. otherwise a token whose offsets overlap the previous token's continues its word
     (byte-level BPE gives every byte piece of one character that character's offsets),
     and so does one whose boundary with the previous token falls inside one
     mis-encoded mark, or next to an apostrophe between two letters or digits
     (`cat's`, `don't` are one word whether the tokenizer splits `cat|'s` or
     `cat|'|s`);
  3. otherwise it starts a word if there is white space between the two tokens (in the
     gap between them, at the start of this token or at the end of the previous one),
     or if either of the two is punctuation (punctuation is its own word);
  4. otherwise (WordPiece `##ing`, BPE `bigg|er`) it continues the word.
`from_words` makes every token a word start.

Sentences. A token with a sentence end ('.', '!', '?') or a line break closes the
current sentence; so does a line break in the gap before a token (WordPiece drops
line breaks) or leading a token (`\\nThe`), before that token. The next word start
that is neither punctuation nor blank opens the new sentence. So a closing quote
after a period stays in the old sentence (so does an opening quote after it), runs
of ends and blank lines make no empty sentences, and sentences start at word starts.

Arrays are int64 and read-only; `to_arrays`/`from_arrays` store a table without
pickle (e.g. in an `.npz`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from headcode.dsl.features import Feature, TokenClass
from headcode.dsl.lexicon import CLOSED_CLASS, normalise

COLUMNS: tuple[Feature | TokenClass, ...] = (*Feature, *TokenClass)
_INDEX: dict[Feature | TokenClass, int] = {c: k for k, c in enumerate(COLUMNS)}
# Stored with a saved table so that a table saved under another vocabulary is refused.
_COLUMN_NAMES = tuple(f"{type(c).__name__}.{c.name}" for c in COLUMNS)

_QUOTES = frozenset("\"'“”‘’«»")
_SENT_ENDS = frozenset(".!?")

# UTF-8 punctuation decoded as Windows-1252, and the mark each stands for. "â€" alone
# is a ” whose third byte (0x9d, undefined in Windows-1252) was dropped; the regex
# tries longer forms first, so it only matches when nothing longer does.
_MOJIBAKE = {
    "â€œ": "“", "â€\x9d": "”", "â€™": "’", "â€˜": "‘",
    "â€”": "—", "â€“": "–", "â€¦": "…", "â€": "”",
}
_MOJIBAKE_RE = re.compile("|".join(map(re.escape, sorted(_MOJIBAKE, key=len, reverse=True))))
# An apostrophe with a letter or digit right on both sides ([^\W_] is alphanumeric).
_INNER_APOSTROPHE_RE = re.compile(r"(?<=[^\W_])(?:â€™|['’])(?=[^\W_])")


def column_index(f: Feature | TokenClass) -> int:
    """The column of feature or class `f` in `TokenTable.features`."""
    return _INDEX[f]


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Token features of one sequence (see the module docstring for their meaning)."""

    ids: np.ndarray  # int64[n]
    surfaces: tuple[str, ...]  # text[start:end] of each token
    texts: tuple[str, ...]  # normalise(surface): the key of word sets and word tables
    features: np.ndarray  # int64[n, len(COLUMNS)]

    def __post_init__(self) -> None:
        # Own read-only copies: programs and kernels may rely on tables not changing.
        ids = np.array(self.ids, dtype=np.int64, copy=True)
        features = np.array(self.features, dtype=np.int64, copy=True, order="C")
        n = len(ids) if ids.ndim == 1 else -1
        if features.shape != (n, len(COLUMNS)):
            raise ValueError(
                f"token table shapes disagree: ids {ids.shape}, features {features.shape}, "
                f"expected ({n},) and ({n}, {len(COLUMNS)})"
            )
        if len(self.surfaces) != n or len(self.texts) != n:
            raise ValueError(f"token table has {n} ids but {len(self.surfaces)} surfaces and {len(self.texts)} texts")
        ids.flags.writeable = False
        features.flags.writeable = False
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "surfaces", tuple(self.surfaces))
        object.__setattr__(self, "texts", tuple(self.texts))

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, f: Feature | TokenClass) -> np.ndarray:
        """A (read-only) view of one column."""
        return self.features[:, _INDEX[f]]

    # --- constructors ---------------------------------------------------------------

    @classmethod
    def from_words(cls, words: Sequence[str], ids: Sequence[int] | None = None) -> TokenTable:
        """One token per word, each starting a word; ids default to 0, 1, ... per distinct word."""
        words = list(words)
        if ids is None:
            first: dict[str, int] = {}
            ids = [first.setdefault(w, len(first)) for w in words]
        # Join with spaces so that the offset rules see a word break before every token.
        offsets, at = [], 0
        for w in words:
            offsets.append((at, at + len(w)))
            at += len(w) + 1
        return cls.from_offsets(" ".join(words), ids, offsets)

    @classmethod
    def from_offsets(cls, text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]]) -> TokenTable:
        """The table of tokens `ids` whose characters are `text[start:end]` for each offset."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"token ids must be one sequence, got an array of shape {ids.shape}")
        spans = [(int(s), int(e)) for s, e in offsets]
        if len(ids) != len(spans):
            raise ValueError(f"{len(ids)} token ids but {len(spans)} offsets")
        for i, (s, e) in enumerate(spans):
            if not 0 <= s <= e <= len(text):
                raise ValueError(f"offsets of token {i} are ({s}, {e}), not a span of the text (length {len(text)})")
        n = len(spans)
        surfaces = tuple(text[s:e] for s, e in spans)
        marks, units, glue = _scan(text)

        features = np.zeros((n, len(COLUMNS)), dtype=np.int64)
        features[:, _INDEX[Feature.POS]] = np.arange(n)
        features[:, _INDEX[Feature.TOK]] = ids
        features[:, _INDEX[Feature.PREV_TOK]] = np.concatenate(([-1], ids[:-1]))[:n]
        for i, (s, e) in enumerate(spans):
            for c, on in _classes(surfaces[i], _effective(text, s, e, marks, units)).items():
                features[i, _INDEX[c]] = on

        punct = features[:, _INDEX[TokenClass.PUNCT]]
        sent_end = features[:, _INDEX[TokenClass.SENT_END]]
        blank = [not s.strip() for s in surfaces]
        word_initial = features[:, _INDEX[TokenClass.WORD_INITIAL]]
        sent = features[:, _INDEX[Feature.SENT]]

        reach = 0  # end of the text covered so far; special tokens (0, 0) do not move it
        closed = False  # the current sentence has ended; the next proper word opens one
        for i, (s, e) in enumerate(spans):
            gap = text[reach:s] if s > reach else ""
            # White space leading the token (`\nThe`) sits before it, like the gap.
            body = surfaces[i].lstrip()
            lead = surfaces[i][: len(surfaces[i]) - len(body)]
            if i == 0:
                word_initial[i] = 1
            else:
                either_punct = bool(punct[i - 1] or punct[i])
                word_initial[i] = _starts_word(
                    spans[i - 1], (s, e), surfaces[i - 1], surfaces[i], gap, either_punct, units, glue
                )
                closed = closed or "\n" in gap or "\n" in lead
                sent[i] = sent[i - 1]
                if closed and word_initial[i] and not (punct[i] or blank[i]):
                    sent[i] += 1
                    closed = False
            closed = closed or bool(sent_end[i]) or "\n" in body
            reach = max(reach, e)
        features[:, _INDEX[Feature.WORD]] = np.cumsum(word_initial) - 1
        return cls(ids, surfaces, tuple(map(normalise, surfaces)), features)

    @classmethod
    def from_text(cls, tokenizer, text: str, max_len: int | None = None, add_special_tokens: bool = False) -> TokenTable:
        """Tokenize `text` with a Hugging Face fast tokenizer and build its table."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"{type(tokenizer).__name__} is not a Hugging Face fast tokenizer, so it gives no character "
                "offsets; load it with AutoTokenizer.from_pretrained(..., use_fast=True) or wrap a "
                "`tokenizers.Tokenizer` in PreTrainedTokenizerFast(tokenizer_object=...)"
            )
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        enc = tokenizer(
            text,
            return_offsets_mapping=True,
            add_special_tokens=add_special_tokens,
            truncation=max_len is not None,
            max_length=max_len,
        )
        return cls.from_offsets(text, enc["input_ids"], enc["offset_mapping"])

    # --- storage without pickle ------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (ids, features, surfaces as 'U') that `from_arrays` turns back into this table."""
        return {
            "ids": self.ids.copy(),
            "features": self.features.copy(),
            "surfaces": np.array(self.surfaces, dtype=str),
            # numpy drops trailing NUL characters of 'U' strings; the lengths restore them.
            "surface_lengths": np.array([len(s) for s in self.surfaces], dtype=np.int64),
            "columns": np.array(_COLUMN_NAMES, dtype=str),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> TokenTable:
        """The table saved by `to_arrays` (the features are stored: they depend on offsets)."""
        missing = [k for k in ("ids", "features", "surfaces") if k not in arrays]
        if missing:
            raise ValueError(f"token table arrays lack {', '.join(missing)}")
        if "columns" in arrays:
            saved = tuple(str(c) for c in np.asarray(arrays["columns"]).reshape(-1))
            if saved != _COLUMN_NAMES:
                raise ValueError(
                    f"token table was saved with columns {list(saved)}, this version has "
                    f"{list(_COLUMN_NAMES)}; rebuild the table from its text"
                )
        surfaces = [str(s) for s in np.asarray(arrays["surfaces"]).reshape(-1)]
        if "surface_lengths" in arrays:
            lengths = np.asarray(arrays["surface_lengths"]).reshape(-1)
            if len(lengths) != len(surfaces):
                raise ValueError(f"{len(surfaces)} surfaces but {len(lengths)} surface lengths")
            surfaces = [s.ljust(int(k), "\x00") for s, k in zip(surfaces, lengths)]
        return cls(arrays["ids"], tuple(surfaces), tuple(map(normalise, surfaces)), arrays["features"])


def by_length(tables: Sequence, size: int) -> list[list[int]]:
    """The indices of `tables` (token tables, or anything with a length) in groups of
    `size`, longest first: similar lengths together, so a padded forward over a group
    pads little. Every batched forward over many sequences (capture, the replacement
    measurements) groups them this way."""
    order = sorted(range(len(tables)), key=lambda k: -len(tables[k]))
    return [order[s:s + size] for s in range(0, len(order), size)]


# --- helpers -------------------------------------------------------------------------


def _scan(text: str) -> tuple[dict[int, str], dict[int, int], set[int]]:
    """Character positions in mis-encoded marks and in word-internal apostrophes.

    Returns (marks, units, glue): the mark each mis-encoded position stands for, the
    start of the sequence it belongs to, and the positions of apostrophes between two
    letters. Sparse, since most texts have few or none.
    """
    marks: dict[int, str] = {}
    units: dict[int, int] = {}
    for m in _MOJIBAKE_RE.finditer(text):
        for p in range(m.start(), m.end()):
            marks[p] = _MOJIBAKE[m.group()]
            units[p] = m.start()
    glue = {p for m in _INNER_APOSTROPHE_RE.finditer(text) for p in range(m.start(), m.end())}
    return marks, units, glue


def _effective(text: str, s: int, e: int, marks: dict[int, str], units: dict[int, int]) -> str:
    """text[s:e] with each (piece of a) mis-encoded sequence replaced by its mark, once."""
    if not marks:
        return text[s:e]
    out = []
    for p in range(s, e):
        if p not in marks:
            out.append(text[p])
        elif p == max(s, units[p]):  # the first position of the sequence inside this token
            out.append(marks[p])
    return "".join(out)


def _classes(surface: str, effective: str) -> dict[TokenClass, int]:
    s = effective.strip()
    first_letter = next((c for c in s if c.isalpha()), "")
    return {
        TokenClass.PUNCT: int(bool(s) and all(unicodedata.category(c)[0] in "PS" for c in s)),
        TokenClass.COMMA: int("," in s),
        TokenClass.SENT_END: int(any(c in _SENT_ENDS for c in s)),
        TokenClass.QUOTE: int(any(c in _QUOTES for c in s)),
        TokenClass.NEWLINE: int("\n" in surface),
        TokenClass.CAP: int(first_letter.isupper()),
        TokenClass.DIGIT: int(any(c.isdigit() for c in s)),
        TokenClass.CLOSED: int(normalise(surface) in CLOSED_CLASS),
    }


def _starts_word(
    prev_span: tuple[int, int],
    span: tuple[int, int],
    prev: str,
    cur: str,
    gap: str,
    either_punct: bool,
    units: dict[int, int],
    glue: set[int],
) -> int:
    """Whether a token (surface `cur`) starts a word after `prev`: rules 1-4 of the module docstring."""
    if not prev.strip() or not cur.strip():
        return 1
    s, pe = span[0], prev_span[1]
    if s < pe:
        return 0
    if s == pe and (units.get(s - 1, -1) == units.get(s, -2) or s - 1 in glue or s in glue):
        return 0
    if any(c.isspace() for c in gap) or cur[0].isspace() or prev[-1].isspace():
        return 1
    return int(either_punct)
