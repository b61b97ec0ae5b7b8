"""headcode.loaders.corpora: sources, sequence cutting, one-per-line, splits."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from headcode.errors import UserError
from headcode.loaders.corpora import SPLITS, open_corpus, sentence_spans, sequences, split_of
from headcode.loaders.models import build_tiny_model

DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinystories" / "dev.txt"


def story(k: int) -> str:
    """A small made-up story with two paragraphs; k makes every sentence different."""
    return (
        f"Story {k} starts here. Ann had {k} red balls. She gave ball {k} to her friend Ben.\n\n"
        f'Ben said, "Thank you for {k}!" They played {k} games until it was dark. The end of {k}.'
    )


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tokenizer(request, tmp_path_factory):
    path = build_tiny_model(request.param, tmp_path_factory.mktemp(request.param))
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture
def stories_file(tmp_path):
    path = tmp_path / "stories.txt"
    path.write_text("\n\n\n".join(story(k) for k in range(40)) + "\n", encoding="utf-8")
    return path


def n_tokens(tokenizer, text, special):
    return len(tokenizer(text, add_special_tokens=special)["input_ids"])


def test_sentence_spans():
    text = 'He said, "Stop!" Then he ran.\n\nThe end\nof it. Yes'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        'He said, "Stop!"', "Then he ran.", "The end\nof it.", "Yes"
    ]


def test_stories_are_packed_within_one_story(tokenizer, stories_file):
    special = tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id
    corpus = open_corpus(str(stories_file))
    assert corpus.has_stories()
    assert len(list(corpus.documents())) == 40
    seqs = list(sequences(corpus, tokenizer, 60, add_special_tokens=special))
    stories = [story(k) for k in range(40)]
    for seq in seqs:
        assert seq.text in stories[seq.source]  # never crosses a story
        assert len(seq.table) <= 60
        assert list(seq.table.ids) == tokenizer(seq.text, add_special_tokens=special)["input_ids"]
        assert seq.split == split_of(stories[seq.source])
    # Whole sentences only, and every sentence of every story appears once, in order.
    for k, text in enumerate(stories):
        joined = "\n\n".join(s.text for s in seqs if s.source == k)
        assert [joined[a:b] for a, b in sentence_spans(joined)] == [text[a:b] for a, b in sentence_spans(text)]
    # Sequences are packed: most hold more than one sentence.
    assert sum(len(sentence_spans(s.text)) > 1 for s in seqs) > len(seqs) / 2


def test_paragraphs_stay_in_packed_text(tokenizer, stories_file):
    seqs = list(sequences(open_corpus(str(stories_file)), tokenizer, 200))
    assert len(seqs) == 40 and all("\n\n" in s.text for s in seqs)


def test_over_long_sentence_is_truncated(tokenizer, tmp_path):
    path = tmp_path / "long.txt"
    long = " ".join(["word"] * 100) + "."
    path.write_text(f"Short one. {long} After.\n", encoding="utf-8")
    seqs = list(sequences(open_corpus(str(path)), tokenizer, 10))
    assert [s.text for s in seqs] == ["Short one.", long, "After."]
    assert len(seqs[1].table) == 10
    assert list(seqs[1].table.ids) == tokenizer(long, add_special_tokens=False)["input_ids"][:10]


def test_unmarked_stream_packs_paragraphs_and_splits_per_sequence(tokenizer, tmp_path):
    path = tmp_path / "stream.txt"
    paragraphs = [p for k in range(30) for p in story(k).split("\n\n")]
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    corpus = open_corpus(str(path))
    assert not corpus.has_stories()
    seqs = list(sequences(corpus, tokenizer, 120))
    assert any(s.text.count("\n\n") >= 1 for s in seqs)  # paragraphs are packed together
    assert [s.source for s in seqs] == list(range(len(seqs)))
    assert all(s.split == split_of(s.text) for s in seqs)
    joined = "\n\n".join(s.text for s in seqs)
    assert joined.replace("\n\n", " ") == " ".join(paragraphs)


def test_splits_are_deterministic_disjoint_and_seeded(tokenizer, stories_file):
    corpus = open_corpus(str(stories_file))
    run = lambda **kw: [(s.text, s.split) for s in sequences(corpus, tokenizer, 30, **kw)]  # noqa: E731
    assert run() == run()
    by_split = {name: {t for t, s in run() if s == name} for name in SPLITS}
    assert all(by_split[a].isdisjoint(by_split[b]) for a in SPLITS for b in SPLITS if a < b)
    assert len(by_split["train"]) > len(by_split["test"])
    only_test = [t for t, _ in run(splits=["test"])]
    assert set(only_test) == by_split["test"]
    assert run(seed=1) != run()
    with pytest.raises(UserError, match="unknown split"):
        list(sequences(corpus, tokenizer, 30, splits=["dev"]))


def test_one_per_line_is_verbatim(tokenizer, tmp_path):
    path = tmp_path / "lines.txt"
    lines = ["  Tom saw a dog.  ", "", "   ", "The dog ran. It was fast, very fast, so fast.", "Last\r"]
    path.write_bytes("\n".join(lines).encode("utf-8"))
    seqs = list(sequences(open_corpus(str(path)), tokenizer, 8, one_per_line=True))
    assert [s.text for s in seqs] == ["  Tom saw a dog.  ", "The dog ran. It was fast, very fast, so fast.", "Last"]
    assert [s.source for s in seqs] == [0, 3, 4]
    for s in seqs:
        expected = tokenizer(s.text, add_special_tokens=False, truncation=True, max_length=8)["input_ids"]
        assert list(s.table.ids) == expected
        assert s.split == split_of(s.text)


def test_bad_bytes_do_not_crash(tokenizer, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xef\xbb\xbfHello \xff\xfe there. \xe2\x80\x9cQuoted\xe2\x80\x9d and \xc3\xa2\xe2\x82\xac\xc5\x93 bad.\n")
    seqs = list(sequences(open_corpus(str(path)), tokenizer, 64))
    assert seqs[0].text.startswith("Hello \ufffd\ufffd there.")
    lines = list(open_corpus(str(path)).lines())
    assert lines[0].startswith("Hello")  # the byte-order mark is not text


def test_unreadable_corpus_is_one_line_error(tmp_path):
    for bad in (tmp_path / "missing.txt", tmp_path):
        with pytest.raises(UserError, match=str(bad)) as err:
            open_corpus(str(bad))
        assert "\n" not in str(err.value)


def test_a_corpus_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for path in (fifo, tmp_path):
        with pytest.raises(UserError, match="not a regular file"):
            open_corpus(str(path))


def test_end_of_text_marks_stories(tokenizer, tmp_path):
    path = tmp_path / "eot.txt"
    path.write_text(f"{story(1)}\n<|endoftext|>\n{story(2)}\n", encoding="utf-8")
    assert [len(d) for d in open_corpus(str(path)).documents()] == [2, 2]


def test_default_corpus_ships_stories():
    corpus = open_corpus()
    try:
        documents = list(corpus.documents())
    except UserError:
        pytest.skip("headcode/loaders/data/stories.txt is not written yet")
    assert corpus.name == "stories" and corpus.has_stories()
    assert len(documents) >= 60


def test_hub_corpus_needs_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(UserError, match=r"pip install 'headcode\[hub\]'"):
        open_corpus("hf:roneneldan/TinyStories")


def test_hub_corpus_streams_records(monkeypatch, tokenizer):
    calls = []

    def load_dataset(name, split, streaming):
        calls.append((name, split, streaming))
        if name != "roneneldan/TinyStories":
            raise ConnectionError("offline")
        return [{"text": story(1)}, {"text": "  \n"}, {"text": story(2).replace("\n\n", "\n \n\n")}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    corpus = open_corpus("hf:roneneldan/TinyStories:validation")
    assert calls == [("roneneldan/TinyStories", "validation", True)]
    assert list(corpus.documents()) == [story(1).split("\n\n"), story(2).split("\n\n")]
    with pytest.raises(UserError, match="one-per-line needs a text file"):
        list(sequences(corpus, tokenizer, 32, one_per_line=True))
    with pytest.raises(UserError, match="cannot reach dataset 'nobody/nothing'"):
        open_corpus("hf:nobody/nothing")


@pytest.mark.skipif(not DEV.is_file(), reason=f"development text {DEV} is not on this machine")
def test_tinystories_dev_file(tokenizer):
    corpus = open_corpus(str(DEV))
    seqs = []
    for seq in sequences(corpus, tokenizer, 128):
        seqs.append(seq)
        if len(seqs) == 300:
            break
    assert all(1 <= len(s.table) <= 128 for s in seqs)
    assert {s.split for s in seqs} == set(SPLITS)



@pytest.mark.parametrize("shape", ["packed", "paragraphs", "windows"])
def test_no_story_is_in_two_splits_whatever_the_shape(tokenizer, tmp_path, shape):
    """Held-out scores must never see a story the programs were fitted on: every
    sequence of one story has that story's split, in every shape, and the source
    index names the story."""
    # Longer stories than story(k), so that windows of 30 tokens cut each into several.
    text = "\n\n\n".join(story(k) + "\n\n" + story(k + 100) for k in range(30)) + "\n"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    seen = [s for s in sequences(open_corpus(str(path)), tokenizer, 30, shape=shape)]
    splits_of_story: dict[int, set[str]] = {}
    for s in seen:
        splits_of_story.setdefault(s.source, set()).add(s.split)
    assert len(splits_of_story) > 10
    assert any(sum(s.source == k for s in seen) > 1 for k in splits_of_story), "no story gave two sequences"
    assert all(len(found) == 1 for found in splits_of_story.values())
    expected = {k: split_of("\n\n".join([story(k), story(k + 100)])) for k in range(30)}
    assert {k: next(iter(v)) for k, v in splits_of_story.items()} == {k: expected[k] for k in splits_of_story}
