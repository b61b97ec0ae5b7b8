"""The attention store and `headcode capture`: exact matrices, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from headcode import cli
from headcode.errors import UserError
from headcode.loaders.corpora import open_corpus, sequences
from headcode.loaders.models import EMBEDDED, build_tiny_model, load_model
from headcode.synth.capture import Capture, capture, check_target

TEXT = (
    "Tom saw a big dog. The dog ran to Tom, and Tom said: \"Hello, dog!\"\n\n"
    "Lily had a red ball. She liked to play with it in the park every day. "
    "One day the ball rolled away. Lily was sad, but her friend found it.\n"
)


@pytest.fixture
def run(monkeypatch):
    """`headcode ...` with only this module's commands (others may not exist yet)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("headcode.cli.capture",))
    return lambda *argv: cli.main([str(a) for a in argv])


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request, tmp_path_factory):
    return load_model(str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param))))


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def reference(loaded, ids) -> np.ndarray:
    """What the issue defines as the truth: model(..., output_attentions=True)."""
    with torch.no_grad():
        out = loaded.model(torch.tensor([list(ids)]), output_attentions=True)
    return torch.stack([a[0] for a in out.attentions]).numpy()


def capture_file(loaded, path, out, max_len=16, **kw):
    seqs = sequences(open_corpus(str(path)), loaded.tokenizer, max_len, add_special_tokens=loaded.add_special_tokens)
    return capture(loaded, seqs, out, {"corpus": str(path)}, progress=False, **kw)


def test_store_holds_exact_attention_and_tables(tiny, corpus_file, tmp_path):
    out = capture_file(tiny, corpus_file, tmp_path / "cap")
    stored = Capture.open(out)
    m = stored.manifest
    assert (m["layers"], m["heads"], m["dtype"]) == (tiny.n_layers, tiny.n_heads, "float16")
    assert m["add_special_tokens"] is tiny.add_special_tokens and m["model_type"] == tiny.model.config.model_type
    assert len(stored) > 3 and m["tokens"] == sum(e["n"] for e in m["sequences"])
    for i in range(len(stored)):
        att, table = stored.attention(i), stored.table(i)
        assert isinstance(att, np.memmap) and att.dtype == np.float16 and not att.flags.writeable
        assert att.shape == (tiny.n_layers, tiny.n_heads, len(table), len(table)) and len(table) <= 16
        assert list(table.ids) == tiny.tokenizer(m["sequences"][i]["text"], add_special_tokens=tiny.add_special_tokens,
                                                 truncation=True, max_length=16)["input_ids"]
        # float16 keeps 11 bits: probabilities in [0, 1] round by at most 2**-12.
        np.testing.assert_allclose(att.astype(np.float32), reference(tiny, table.ids), rtol=0, atol=2**-12)
    if tiny.add_special_tokens:  # Llama: every sequence starts with BOS
        assert all(stored.table(i).ids[0] == tiny.tokenizer.bos_token_id for i in range(len(stored)))


def test_the_first_layers_alone_give_the_same_attention(tiny):
    """`record_attention(..., layers=k)` runs only k decoder layers (score and library
    edit of early heads) and gives exactly the first k layers of the whole forward; the
    model is whole again afterwards."""
    from headcode.synth.capture import record_attention

    ids = tiny.tokenizer("Tom ran home. Then he sat down, happy.")["input_ids"]
    whole = record_attention(tiny.model, ids)
    first = record_attention(tiny.model, ids, layers=1)
    assert first.shape == (1, *whole.shape[1:]) and np.array_equal(first, whole[:1])
    assert np.array_equal(record_attention(tiny.model, ids, layers=tiny.n_layers), whole)
    assert np.array_equal(record_attention(tiny.model, ids), whole)


def test_fewer_layers_first_then_all(tmp_path):
    """A model first run with its first layer only, then whole, records every layer the
    second time (transformers installs its recording hooks on the first forward, on the
    layers present then; a report or a demo may run one model both ways)."""
    from headcode.synth.capture import record_attention

    fresh = load_model(str(build_tiny_model("llama", tmp_path / "llama")))
    ids = fresh.tokenizer("Tom ran home. Then he sat down, happy.")["input_ids"]
    first = record_attention(fresh.model, ids, layers=1)
    whole = record_attention(fresh.model, ids)
    assert first.shape[0] == 1 and whole.shape[0] == fresh.n_layers == 2
    assert np.array_equal(whole[:1], first)


def test_max_seqs_stops_reading_the_corpus(tiny, tmp_path):
    read = []

    def stream():
        for seq in sequences(open_corpus(str(tmp_path / "t.txt")), tiny.tokenizer, 12):
            read.append(seq)
            yield seq

    (tmp_path / "t.txt").write_text(TEXT * 5, encoding="utf-8")
    out = capture(tiny, stream(), tmp_path / "cap", {}, limit=3, progress=False)
    assert len(Capture.open(out)) == 3 and len(read) <= 4


def test_failed_capture_leaves_old_capture_and_no_temp_files(tiny, corpus_file, tmp_path):
    out = capture_file(tiny, corpus_file, tmp_path / "cap")
    before = json.loads((out / "manifest.json").read_text())

    def broken():
        yield from sequences(open_corpus(str(corpus_file)), tiny.tokenizer, 8)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        capture(tiny, broken(), out, {}, progress=False)
    assert json.loads((out / "manifest.json").read_text()) == before
    assert left_beside(tmp_path) == ["cap", "text.txt"]
    # A successful capture replaces the old one entirely.
    capture_file(tiny, corpus_file, out, limit=2)
    assert len(before["sequences"]) > 2 and len(Capture.open(out)) == 2
    assert len(list((out / "attn").iterdir())) == len(list((out / "tokens").iterdir())) == 2
    assert left_beside(tmp_path) == ["cap", "text.txt"]


def left_beside(directory) -> list[str]:
    """What is in `directory`, but the lock file that serialises writes of a target."""
    return sorted(p.name for p in directory.iterdir() if not (p.name.startswith(".") and p.name.endswith(".lock")))


def test_targets_that_are_not_captures_are_refused(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("mine")
    for target, message in ((tmp_path / "busy", "not a headcode capture"), (tmp_path / "file", "is a file")):
        with pytest.raises(UserError, match=message):
            check_target(target)
    check_target(tmp_path / "new")  # fine: does not exist
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty")


def test_cli_errors_are_one_line(run, tmp_path, capsys, monkeypatch):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert run("capture", "--out", tmp_path / "busy") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a headcode capture" in err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run("capture", "--model", "gpt2-not-here", "--corpus", tmp_path / "busy" / "notes.txt",
               "--out", tmp_path / "new") == 2
    err = capsys.readouterr().err
    assert err.strip() == ("headcode: error: cannot reach model 'gpt2-not-here' (offline or unknown name); "
                           "use 'smollm2-135m' or a local path")
    assert run("capture", "--corpus", tmp_path / "missing.txt", "--out", tmp_path / "new") == 2
    assert "missing.txt: cannot read corpus" in capsys.readouterr().err
    assert run("heads", tmp_path / "busy") == 2
    assert "not a headcode capture" in capsys.readouterr().err


def test_cli_capture_one_per_line_on_a_local_model(run, tiny, tmp_path, capsys):
    model_dir = tiny.model.name_or_path
    lines = tmp_path / "lines.txt"
    lines.write_text("The dog ran.\n\nTom said hello to the big red dog in the park today.\n", encoding="utf-8")
    assert run("capture", "--model", model_dir, "--corpus", lines, "--one-per-line", "--max-len", 6,
               "--out", tmp_path / "cap", "--quiet") == 0
    assert "captured 2 sequences" in capsys.readouterr().out
    stored = Capture.open(tmp_path / "cap")
    assert [e["text"] for e in stored.manifest["sequences"]] == [
        "The dog ran.", "Tom said hello to the big red dog in the park today."
    ]
    assert [e["source"] for e in stored.manifest["sequences"]] == [0, 2]
    assert stored.manifest["one_per_line"] is True and stored.manifest["max_len"] == 6
    assert len(stored.table(1)) == 6


@pytest.mark.slow
def test_embedded_model_capture_equals_output_attentions(run, tmp_path, capsys):
    """The issue's acceptance test, through the CLI, on the real model."""
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    assert run("capture", "--corpus", corpus, "--max-len", 24, "--max-seqs", 3, "--out", tmp_path / "cap") == 0
    stored = Capture.open(tmp_path / "cap")
    assert stored.manifest["model"] == EMBEDDED and (stored.layers, stored.heads) == (30, 9)
    assert stored.manifest["add_special_tokens"] is False
    loaded = load_model(EMBEDDED)
    for i in range(len(stored)):
        table = stored.table(i)
        expected = reference(loaded, table.ids)
        got = stored.attention(i).astype(np.float32)
        # float16 rounding (<= 2**-12) plus CPU matmul results that vary slightly
        # between processes (memory alignment), amplified through 30 layers.
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3)
        assert np.abs(got - expected).mean() < 1e-5
        assert np.allclose(got.sum(-1), 1.0, atol=0.02) and not np.triu(got, 1).any()

    capsys.readouterr()
    assert run("heads", tmp_path / "cap", "--json") == 0
    heads = json.loads(capsys.readouterr().out)
    assert len(heads) == 270 and {"layer", "head", "entropy", "first_mass", "prev_mass", "self_mass",
                                  "same_token_mass", "last_punct_mass"} <= set(heads[0])
    assert run("heads", tmp_path / "cap") == 0
    grid = capsys.readouterr().out.splitlines()
    assert len(grid) == 1 + 1 + 30 + 1 and all(len(line) <= 100 for line in grid[:-1])


# --- damaged captures: one line naming the file, never a traceback ------------------


@pytest.fixture(scope="module")
def pristine(tiny, tmp_path_factory):
    """A small capture of the tiny model, for the damage tests to copy."""
    where = tmp_path_factory.mktemp("pristine")
    corpus = where / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    return capture_file(tiny, corpus, where / "cap")


@pytest.fixture
def damaged(pristine, tmp_path):
    """A fresh copy of the pristine capture to damage."""
    import shutil

    return Path(shutil.copytree(pristine, tmp_path / "cap"))


def edit_manifest(change):
    def damage(cap):
        manifest = json.loads((cap / "manifest.json").read_text())
        change(manifest)
        (cap / "manifest.json").write_text(json.dumps(manifest))
    return damage


def edit_attention(change, k=1):
    def damage(cap):
        file = cap / "attn" / f"{k:06d}.npy"
        np.save(file, change(np.load(file).copy()))
    return damage


def nan_at(a):
    a[1, 0, 2, 1] = np.nan
    return a


def other_table(cap):
    """Sequence 1's token table replaced by one of a different length."""
    m = json.loads((cap / "manifest.json").read_text())
    k = next(k for k, e in enumerate(m["sequences"]) if e["n"] != m["sequences"][1]["n"])
    (cap / "tokens" / "000001.npz").write_bytes((cap / "tokens" / f"{k:06d}.npz").read_bytes())


DAMAGES = {
    "sequences not a list": (edit_manifest(lambda m: m.update(sequences={"0": 1})),
                             "manifest.json: sequences must be a list, not a JSON object"),
    "layers a string": (edit_manifest(lambda m: m.update(layers="2")),
                        "manifest.json: layers must be a whole number of at least 1, not '2'"),
    "heads a fraction": (edit_manifest(lambda m: m.update(heads=1.5)),
                         "manifest.json: heads must be a whole number of at least 1, not 1.5"),
    "layers absurd": (edit_manifest(lambda m: m.update(layers=10**9)), "over the limit of 65,536 heads"),
    "an entry not an object": (edit_manifest(lambda m: m["sequences"].__setitem__(1, 7)),
                               "manifest.json: sequences[1] must be an object, not 7"),
    "n missing": (edit_manifest(lambda m: m["sequences"][0].pop("n")),
                  "manifest.json: sequences[0].n must be a whole number of at least 1, not missing"),
    "split not a string": (edit_manifest(lambda m: m["sequences"][0].update(split=None)),
                           "manifest.json: sequences[0].split must be a string"),
    "attention outside the capture": (edit_manifest(lambda m: m["sequences"][0].update(attention="../../../etc/x")),
                                      "manifest.json: sequences[0].attention must be a file name inside the capture"),
    "manifest integer too long": (lambda cap: (cap / "manifest.json").write_text(
        '{"format": "headcode-capture", "version": 1, "layers": 1' + "0" * 5000 + "}"),
        "manifest.json: not a capture manifest: "),
    "attention missing": (lambda cap: (cap / "attn" / "000000.npy").unlink(),
                          "attn/000000.npy: cannot read attention: No such file or directory"),
    "attention NaN": (edit_attention(nan_at),
                      "attn/000001.npy: attention value nan at layer 1, head 0, query 2, key 1 is not a probability"),
    "attention negative": (edit_attention(lambda a: -a),
                           "attn/000001.npy: attention value -1.0 at layer 0, head 0, query 0, key 0"),
    "attention wrong shape": (edit_attention(lambda a: a[:, :, 1:, 1:]), "attn/000001.npy: attention has shape"),
    "attention float32": (edit_attention(lambda a: a.astype(np.float32)),
                          "attn/000001.npy: attention must be float16 ('<f2'), is an array of '<f4'"),
    "attention truncated": (lambda cap: (cap / "attn" / "000001.npy").write_bytes(
        (cap / "attn" / "000001.npy").read_bytes()[:200]), "attn/000001.npy: cannot read attention: "),
    "attention a pickle": (lambda cap: np.save(cap / "attn" / "000001.npy", np.array([{}], dtype=object),
                                               allow_pickle=True), "attn/000001.npy: cannot read attention: "),
    "attention a FIFO": (lambda cap: ((cap / "attn" / "000001.npy").unlink(), os.mkfifo(cap / "attn" / "000001.npy")),
                         "attn/000001.npy: cannot read attention: not a regular file"),
    "tokens missing": (lambda cap: (cap / "tokens" / "000001.npz").unlink(),
                       "tokens/000001.npz: cannot read token table: No such file or directory"),
    "tokens garbage": (lambda cap: (cap / "tokens" / "000001.npz").write_bytes(b"PK\x03\x04 not a zip"),
                       "tokens/000001.npz: cannot read token table: "),
    "tokens a device": (lambda cap: ((cap / "tokens" / "000001.npz").unlink(),
                                     (cap / "tokens" / "000001.npz").symlink_to("/dev/zero")),
                        "tokens/000001.npz: cannot read token table: not a regular file"),
    "tokens of another length": (other_table, "tokens/000001.npz: token table has "),
}


@pytest.mark.parametrize("tiny", ["gpt2"], indirect=True)
@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_damaged_captures_are_refused_in_one_line(run, damaged, capsys, name):
    damage, message = DAMAGES[name]
    damage(damaged)
    signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(60)  # a FIFO once blocked the reader forever
    try:
        code = run("heads", damaged)
    finally:
        signal.alarm(0)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"headcode: error: {damaged}/") and message in err, err


def _too_slow(*_):
    raise TimeoutError("the reader hung on a damaged capture")


@pytest.mark.parametrize("tiny", ["gpt2"], indirect=True)
def test_only_the_part_read_is_checked_and_a_damaged_capture_can_be_replaced(tiny, damaged, corpus_file, run,
                                                                             capsys):
    edit_attention(nan_at)(damaged)
    stored = Capture.open(damaged)
    assert stored.attention(1, 0).shape[0] == stored.heads and stored.attention(1, 1, 1).shape == (
        stored.entry(1)["n"],) * 2
    assert np.isfinite(stored.attention(0)).all()  # sequence 0 is intact
    for part in ((1,), (1, 1), (1, 1, 0)):
        with pytest.raises(UserError, match="is not a probability"):
            stored.attention(*part)
    # A damaged capture is still a capture: `capture --out` may replace it.
    edit_manifest(lambda m: m.update(sequences=5))(damaged)
    check_target(damaged)
    capture_file(tiny, corpus_file, damaged, limit=2)
    assert run("heads", damaged) == 0 and "sequences" in capsys.readouterr().out


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma3"])
def test_a_padded_batch_gives_each_sequence_its_own_attention(arch, tmp_path):
    """`record_batch` pads shorter sequences on the right; in a causal model (Gemma 3's
    sliding windows included) a real token's row never reads the padding, so each
    sequence's attention is the one it has alone (to float16 rounding), whatever its
    neighbours, and `by_length` groups every index once, longest first."""
    from headcode.dsl.tokens import by_length
    from headcode.synth.capture import record_attention, record_batch

    loaded = load_model(str(build_tiny_model(arch, tmp_path / arch)))
    texts = ["Tom ran home.", "Then he sat down, happy, and he read a long book about dogs and cats.", "Hi.",
             "Lily had a red ball; she played with it in the park every day."]
    ids = [loaded.tokenizer(t)["input_ids"] for t in texts]
    batched = record_batch(loaded.model, ids)
    for one, many in zip(ids, batched):
        alone = record_attention(loaded.model, one)
        assert many.shape == alone.shape == (loaded.n_layers, loaded.n_heads, len(one), len(one))
        np.testing.assert_allclose(many.astype(np.float32), alone.astype(np.float32), rtol=0, atol=2**-11)
    first = record_batch(loaded.model, ids, layers=1)
    assert all(np.array_equal(f, b[:1]) for f, b in zip(first, batched))
    groups = by_length(ids, 3)
    assert sorted(k for g in groups for k in g) == list(range(len(ids))) and [len(g) for g in groups] == [3, 1]
    assert [len(ids[k]) for k in groups[0]] == sorted((len(ids[k]) for k in groups[0]), reverse=True)
