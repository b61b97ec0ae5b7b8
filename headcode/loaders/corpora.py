"""Corpora: where text comes from, how it becomes model-sized sequences, and splits.

Sources (`open_corpus(spec)`):
  - `stories` (the default): short stories written for this project, shipped in
    `headcode/loaders/data/stories.txt`;
  - a path to any text file, read as UTF-8; bytes that are not UTF-8 become U+FFFD
    instead of stopping the run (public TinyStories copies have mis-encoded quotes);
  - `hf:NAME` or `hf:NAME:SPLIT` (e.g. `hf:roneneldan/TinyStories`), streamed through
    the optional `datasets` package, one document per record's `text`.

Text files are streams of paragraphs: non-blank lines separated by blank lines. A
document (a story) ends at two or more blank lines in a row or at a line that is just
`<|endoftext|>`. A file with neither marker has no known story boundaries: it is
one stream of paragraphs (read one paragraph at a time, so it may be any size).

Sequences (`sequences(...)`). Text is cut into sentences (a run of . ! ?, then
closing quotes or brackets, then white space; paragraph breaks end sentences too).
Consecutive sentences are packed greedily while the sequence stays within `max_len`
tokens (counting any special tokens), never across two stories; the sequence's text
is the original text from its first sentence to its last, so paragraph breaks inside
it are kept. A single sentence longer than `max_len` is truncated to `max_len` tokens
and the rest of that sentence is dropped.

With `one_per_line`, each line of the file (split at b"\\n", without the line ending;
a trailing "\\r" is removed too) that has a non-white-space character is one sequence,
verbatim, truncated to `max_len` tokens, and nothing else: external tools reproduce
exactly the same sequences from the same file.

Splits. Each story goes to train / validation / test (80 / 10 / 10 %) by a hash of
the seed and its text: deterministic (no global random state, no order dependence),
disjoint by construction, and all sequences of one story share a split whatever the
shape, so held-out scores never see a story the programs were fitted on. Where
stories are unknown (an unmarked stream, or one line per sequence) each sequence is
hashed on its own text. Identical stories or sequences land in the same split.

`SplitSpec` is the one value that says how a corpus is cut (corpus, shape,
max_len, one_per_line, seed and the number of sequences kept per split): `explain`
records it in the library, and `score`, `replace` and the tests read it back whole.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from headcode.errors import UserError

DEFAULT = "stories"
MIN_PARAGRAPH = 20  # tokens a paragraph needs to count as a `paragraphs` sequence
SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
END_OF_TEXT = "<|endoftext|>"

# The end of a sentence: terminal marks, then closing quotes/brackets (also the
# mis-encoded ” and ’ of public TinyStories copies), right before white space.
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"'”’)\]]|â€[\x9d™]?)*(?=\s)")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


@dataclass(frozen=True)
class Corpus:
    """A named source of text. `documents()` and `lines()` start a fresh stream each call."""

    name: str
    documents: Callable[[], Iterator[list[str]]]  # each a list of paragraphs
    lines: Callable[[], Iterator[str]] | None  # None: the source has no lines (hf:)
    has_stories: Callable[[], bool]  # False: documents are single paragraphs of a stream


@dataclass(frozen=True)
class Sequence:
    """One model input: its text, its token table and where it came from."""

    text: str  # the source text; the table covers its first max_len tokens
    table: object  # headcode.dsl.tokens.TokenTable; its ids are what the model reads
    split: str
    # Where it came from: the 0-based line number with one_per_line, the story's
    # index in a corpus with stories, else the sequence's index in the stream.
    source: int


# --- sources --------------------------------------------------------------------------


def open_corpus(spec: str | None = None) -> Corpus:
    """The corpus named by `spec`: `stories` (default), a text file path, or `hf:NAME[:SPLIT]`."""
    spec = spec or DEFAULT
    if spec == DEFAULT:
        resource = resources.files("headcode.loaders").joinpath("data", "stories.txt")
        return _text_corpus(DEFAULT, lambda: resource.open("rb"), str(resource))
    if spec.startswith("hf:"):
        return _hub_corpus(spec)
    path = Path(spec).expanduser()
    if path.exists() and not path.is_file():  # a FIFO would block the reader, a device never end
        raise UserError(f"{spec}: cannot read corpus: not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise UserError(f"{spec}: cannot read corpus: {err.strerror or err}") from None
    return _text_corpus(spec, lambda: open(path, "rb"), spec)


def check_corpus(spec: str | None = None) -> None:
    """Refuse, before a model is loaded, a local corpus file that cannot be read
    (one-line UserError). Costs an open; a hub dataset is checked when it is read."""
    if not (spec or DEFAULT).startswith("hf:"):
        open_corpus(spec)


def _text_corpus(name: str, opener: Callable, where: str) -> Corpus:
    def lines() -> Iterator[str]:
        try:
            with opener() as handle:
                for k, raw in enumerate(handle):
                    line = raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
                    yield line.removeprefix("\ufeff") if k == 0 else line
        except OSError as err:
            raise UserError(f"{where}: cannot read corpus: {err.strerror or err}") from None

    @functools.cache
    def has_stories() -> bool:
        return _has_story_marks(lines())

    def documents() -> Iterator[list[str]]:
        return _documents(lines(), by_story=has_stories())

    return Corpus(name, documents, lines, has_stories)


def _has_story_marks(lines: Iterable[str]) -> bool:
    """Whether some story mark (two blank lines, or END_OF_TEXT) has text on both sides.

    A first pass that stops at the first mark and holds nothing, so an unmarked
    file can then be streamed paragraph by paragraph.
    """
    text_before = mark = False
    blanks = 0
    for line in lines:
        stripped = line.strip()
        if stripped == END_OF_TEXT or (not stripped and blanks == 1):
            mark = mark or text_before
        if not stripped or stripped == END_OF_TEXT:
            blanks += 1
            continue
        if mark:
            return True
        text_before, blanks = True, 0
    return False


def _documents(lines: Iterable[str], by_story: bool) -> Iterator[list[str]]:
    """Documents as lists of paragraphs: stories if `by_story`, else single paragraphs."""
    paragraphs: list[str] = []
    current: list[str] = []
    blanks = 0
    for line in lines:
        stripped = line.strip()
        if stripped and stripped != END_OF_TEXT:
            current.append(line)
            blanks = 0
            continue
        if current:
            paragraphs.append("\n".join(current))
            current = []
        blanks = 2 if stripped == END_OF_TEXT else blanks + 1
        if paragraphs and (blanks >= 2 or not by_story):
            yield paragraphs
            paragraphs = []
    if current:
        paragraphs.append("\n".join(current))
    if paragraphs:
        yield paragraphs


def _hub_corpus(spec: str) -> Corpus:
    name, _, split = spec[len("hf:"):].partition(":")
    if not name:
        raise UserError(f"{spec}: give a dataset name, e.g. hf:roneneldan/TinyStories")
    try:
        import datasets
    except ImportError:
        raise UserError(f"{spec} needs the optional package 'datasets': pip install 'headcode[hub]'") from None
    unreachable = f"cannot reach dataset '{name}' (offline or unknown name); use the default corpus or a local text file"
    try:
        stream = datasets.load_dataset(name, split=split or "train", streaming=True)
    except Exception as err:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ...)
        raise UserError(unreachable) from err

    def documents() -> Iterator[list[str]]:
        try:
            for record in stream:
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    raise UserError(f"{spec}: records have no 'text' field; cannot use it as a corpus")
                paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
                if paragraphs:
                    yield paragraphs
        except UserError:
            raise
        except Exception as err:
            raise UserError(unreachable) from err

    return Corpus(spec, documents, None, lambda: True)


# --- sequences and splits ---------------------------------------------------------------


def split_of(document: str, seed: int = 0) -> str:
    """The split of a document: a stable hash of (seed, text) placed on FRACTIONS."""
    digest = hashlib.blake2b(f"{seed}\0{document}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    edge = 0.0
    for name, fraction in zip(SPLITS, FRACTIONS):
        edge += fraction
        if u < edge:
            return name
    return SPLITS[-1]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, without surrounding white space."""
    cuts = sorted({m.end() for m in _SENTENCE_END.finditer(text)} | {m.start() for m in _PARAGRAPH_BREAK.finditer(text)})
    spans, start = [], 0
    for cut in [*cuts, len(text)]:
        piece = text[start:cut]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = cut
    return spans


def _sentences(paragraphs: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(white space before it, sentence) for each sentence of a stream of paragraphs."""
    before = ""
    for paragraph in paragraphs:
        end = None
        for s, e in sentence_spans(paragraph):
            yield (before if end is None else paragraph[end:s]), paragraph[s:e]
            end = e
        before = "\n\n"


def pack(sentences: Iterable[tuple[str, str]], count: Callable[[str], int], budget: int) -> Iterator[str]:
    """Join consecutive sentences into texts of at most `budget` tokens (by `count`).

    Sentence counts are summed to decide when a text is full; the joined text's own
    count then has the last word (a tokenizer may merge across a boundary), handing
    sentences that do not fit to the next text. A sentence longer than `budget` is
    yielded alone, for the caller to truncate. Holds one text's sentences at a time.
    """
    held: list[tuple[str, str, int]] = []
    for before, sentence in sentences:
        size = count(sentence)
        if held and sum(k for _, _, k in held) + size > budget:
            held = yield from _emit(held, count, budget)
        held.append((before, sentence, size))
    while held:
        held = yield from _emit(held, count, budget)


def _emit(held: list[tuple[str, str, int]], count: Callable[[str], int], budget: int):
    def join(items) -> str:
        return items[0][1] + "".join(before + sentence for before, sentence, _ in items[1:])

    k = len(held)
    while k > 1 and count(join(held[:k])) > budget:
        k -= 1
    yield join(held[:k])
    return held[k:]


def sequences(
    corpus: Corpus,
    tokenizer,
    max_len: int,
    *,
    add_special_tokens: bool = False,
    one_per_line: bool = False,
    seed: int = 0,
    splits: Iterable[str] | None = None,
    shape: str = "packed",
) -> Iterator[Sequence]:
    """The corpus as model inputs of at most `max_len` tokens (see the module docstring).

    `splits` keeps only sequences of those splits (default: all). The token ids of
    each `Sequence.table` are exactly what the tokenizer gives for its text (with the
    special tokens if asked), so a model fed `table.ids` sees that text.
    """
    from headcode.dsl.tokens import TokenTable

    if max_len < 1:
        raise UserError(f"--max-len must be at least 1, got {max_len}")
    wanted = set(SPLITS if splits is None else splits)
    unknown = wanted - set(SPLITS)
    if unknown:
        raise UserError(f"unknown split {sorted(unknown)[0]!r}; use one of {', '.join(SPLITS)}")
    if shape not in SHAPES:
        raise UserError(f"unknown sequence shape {shape!r}; use one of {', '.join(SHAPES)}")
    if one_per_line and shape != "packed":
        raise UserError(f"--one-per-line takes each line as it is; it cannot be combined with --shape {shape}")
    texts = (_texts(corpus, tokenizer, max_len, add_special_tokens, one_per_line) if shape == "packed"
             else SHAPES[shape](corpus, tokenizer, max_len))
    for text, key, source in texts:
        split = split_of(key, seed)
        if split in wanted:
            table = TokenTable.from_text(tokenizer, text, max_len=max_len, add_special_tokens=add_special_tokens)
            yield Sequence(text, table, split, source)


def _paragraphs(corpus: Corpus, tokenizer, max_len: int):
    """Each paragraph on its own (truncated to max_len later), if it has MIN_PARAGRAPH tokens."""
    by_story = corpus.has_stories()
    for index, paragraphs in enumerate(corpus.documents()):
        story = "\n\n".join(paragraphs) if by_story else None
        for paragraph in paragraphs:
            if len(tokenizer(paragraph, add_special_tokens=False)["input_ids"]) >= MIN_PARAGRAPH:
                yield paragraph, story or paragraph, index


def _windows(corpus: Corpus, tokenizer, max_len: int):
    """Consecutive paragraphs joined by a blank line until they reach max_len tokens (then
    cut there); never across stories; a story's remainder shorter than that is dropped.
    With stories, a window is split (and sourced) by its story."""
    index, held, by_story = 0, "", corpus.has_stories()
    for story_index, paragraphs in enumerate(corpus.documents()):
        story = "\n\n".join(paragraphs) if by_story else None
        if by_story:
            held = ""
        for paragraph in paragraphs:
            held = f"{held}\n\n{paragraph}" if held else paragraph
            if len(tokenizer(held, add_special_tokens=False)["input_ids"]) >= max_len:
                yield held, story or held, story_index if by_story else index
                index += 1
                held = ""


def _texts(corpus: Corpus, tokenizer, max_len: int, add_special_tokens: bool, one_per_line: bool):
    """(text, split key, source) for each sequence, before tokenization."""
    if one_per_line:
        if corpus.lines is None:
            raise UserError(f"--one-per-line needs a text file; {corpus.name} is not one")
        for number, line in enumerate(corpus.lines()):
            if line.strip():
                yield line, line, number
        return
    special = len(tokenizer("", add_special_tokens=add_special_tokens)["input_ids"])
    budget = max(1, max_len - special)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if corpus.has_stories():
        for index, paragraphs in enumerate(corpus.documents()):
            story = "\n\n".join(paragraphs)
            for text in pack(_sentences(paragraphs), count, budget):
                yield text, story, index
    else:  # a stream without story marks: each sequence is its own unit of the split
        paragraphs = (p for document in corpus.documents() for p in document)
        for index, text in enumerate(pack(_sentences(paragraphs), count, budget)):
            yield text, text, index


# Sequence shapes besides the default sentence packing ("packed"):
#   paragraphs  each paragraph alone, truncated to max_len, kept with MIN_PARAGRAPH tokens;
#   windows     consecutive paragraphs joined by a blank line, cut at exactly max_len tokens.
SHAPES: dict[str, Callable | None] = {"packed": None, "paragraphs": _paragraphs, "windows": _windows}


@dataclass(frozen=True)
class SplitSpec:
    """How a corpus is cut into split sequences (see the module docstring)."""

    corpus: str = DEFAULT
    shape: str = "packed"
    max_len: int = 128
    one_per_line: bool = False
    seed: int = 0
    train: int = 200  # sequences kept per split, at most
    validation: int = 40
    test: int = 40

    def __post_init__(self) -> None:
        if not isinstance(self.corpus, str) or not self.corpus:
            raise UserError("a corpus is a name, a file path or hf:NAME, not an empty string")
        if self.shape not in SHAPES:
            raise UserError(f"unknown sequence shape {self.shape!r}; use one of {', '.join(SHAPES)}")
        if self.max_len < 1:
            raise UserError(f"--max-len must be at least 1, got {self.max_len}")
        if self.one_per_line and self.shape != "packed":
            raise UserError(f"--one-per-line takes each line as it is; it cannot be combined with --shape {self.shape}")
        if any(n < 0 for n in self.counts.values()):
            raise UserError("the number of sequences of a split cannot be negative")

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SPLITS}

    def stream(self, tokenizer, add_special_tokens: bool, splits: Iterable[str] | None = None) -> Iterator[Sequence]:
        """The sequences of the corpus as cut, in corpus order (of the given splits)."""
        return sequences(open_corpus(self.corpus), tokenizer, self.max_len, add_special_tokens=add_special_tokens,
                         one_per_line=self.one_per_line, seed=self.seed, splits=splits, shape=self.shape)

    def record(self, sequences: Mapping[str, int], tokens: Mapping[str, int]) -> dict:
        """What a library records: this spec and what the cut gave (sequences, tokens per split)."""
        return {"corpus": self.corpus, "shape": self.shape, "max_len": self.max_len,
                "one_per_line": self.one_per_line, "seed": self.seed, "counts": self.counts,
                "sequences": {name: int(sequences[name]) for name in SPLITS},
                "tokens": {name: int(tokens[name]) for name in SPLITS}}

    @classmethod
    def from_record(cls, record: Mapping) -> SplitSpec:
        """The spec a library recorded (`record`); counts are those it asked for."""
        return cls(corpus=record["corpus"], shape=record["shape"], max_len=record["max_len"],
                   one_per_line=record["one_per_line"], seed=record["seed"], **dict(record["counts"]))
