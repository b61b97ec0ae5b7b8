"""Heads replaced inside the model: proofs on tiny random GPT-2, Llama and Gemma 3
models (and, marked slow, on the embedded SmolLM2 and Gemma 3 270M) that the
mechanism does what it says: GQA-correct, causal, and within a sliding window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headcode.dsl import Program
from headcode.dsl.tokens import TokenTable
from headcode.errors import UserError
from headcode.library import LibraryError, Level, Library, ModelIdentity, identity_of
from headcode.loaders.models import build_tiny_model, load_model
from headcode.replace import attach, attention_modules, choose_heads, encode, forward, run, table_from_ids
from headcode.replace import attention as attn

TEXTS = [
    "Tom saw a big dog. The dog ran to Tom, and Tom said: \"Hello, dog!\"",
    "Lily had a red ball.",
    "One day the ball rolled away. Lily was sad, but her friend found it.",
]
PROGRAMS = ["bos", "prev(1) else bos", "last(punct) else bos", "0.5*bos + 0.5*self", "decay(0.5)"]
SPLIT = {"corpus": "stories", "shape": "packed", "max_len": 48, "one_per_line": False, "seed": 0,
         "counts": {"train": 0, "validation": 4, "test": 6}, "sequences": {"train": 0, "validation": 4, "test": 6},
         "tokens": {"train": 0, "validation": 150, "test": 220}}
CREATED = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3"])
def tiny(request, tmp_path_factory):
    loaded = load_model(str(build_tiny_model(request.param, tmp_path_factory.mktemp(request.param))))
    return loaded


def library_for(loaded, name="tiny") -> Library:
    """Every head explained by one of a few simple programs; IoU falls with the index."""
    identity = identity_of(name, loaded.model, loaded.tokenizer)
    lib = Library(model=identity, split=SPLIT, created=CREATED)
    k = 0
    for layer in range(identity.num_layers):
        for head in range(identity.num_heads):
            lib = put(lib, layer, head, PROGRAMS[k % len(PROGRAMS)], validation={"iou": 1.0 - 0.01 * k})
            k += 1
    return lib


def put(lib: Library, layer: int, head: int, text: str, level: Level = Level.FULL, **kw) -> Library:
    return lib.with_head(layer, head, level, Program.of(text), source="score", **kw)


def logits_of(loaded, texts=TEXTS, handle=None, **options):
    out, batch = run(loaded.model, loaded.tokenizer, texts, handle, add_special_tokens=loaded.add_special_tokens,
                     **options)
    return out, batch


def all_heads(loaded):
    return [(layer, head) for layer in range(loaded.n_layers) for head in range(loaded.n_heads)]


def oracle(loaded, batch):
    """A surrogate returning each head's own attention, recorded by eager attention on
    the same padded batch (so that only the substitution differs, not the batch shape)."""
    with torch.no_grad():
        out = loaded.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.position_ids, output_attentions=True)
    rows = {}
    for b, table in enumerate(batch.tables):
        start, stop = batch.starts[b], batch.starts[b] + len(table)
        rows[tuple(table.ids.tolist())] = [a[b, :, start:stop, start:stop].double().numpy() for a in out.attentions]

    def matrices(table, heads):
        own = rows[tuple(table.ids.tolist())]
        return np.stack([own[layer][head] for layer, head in heads])

    return matrices


def projection_inputs(loaded, layer):
    """Capture the input of a layer's output projection (o_proj / c_proj)."""
    module = attention_modules(loaded.model)[layer]
    proj = getattr(module, "o_proj", None) or module.c_proj
    seen = []
    hook = proj.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    return seen, hook


# --- the proofs ----------------------------------------------------------------------


def test_oracle_leaves_logits_unchanged(tiny):
    batch = encode(TEXTS, tiny.tokenizer, add_special_tokens=tiny.add_special_tokens)
    base = forward(tiny.model, batch)
    with attach(tiny.model, heads=all_heads(tiny), matrices_fn=oracle(tiny, batch)) as handle:
        out = forward(tiny.model, batch, handle)
    real = batch.attention_mask.bool()
    assert (out - base)[real].abs().max().item() <= 1e-5


def test_one_head_changes_only_its_slice(tiny):
    lib = library_for(tiny)
    head_dim = attention_modules(tiny.model)[0].head_dim  # Gemma's is not hidden_size // heads
    for layer in range(tiny.n_layers):
        for head in (0, tiny.n_heads - 1):
            seen, hook = projection_inputs(tiny, layer)
            try:
                logits_of(tiny)
                with attach(tiny.model, lib, heads=[(layer, head)], tokenizer=tiny.tokenizer) as handle:
                    logits_of(tiny, handle=handle)
            finally:
                hook.remove()
            before, after = seen
            mine = slice(head * head_dim, (head + 1) * head_dim)
            changed = (before != after).any(dim=(0, 1))
            assert changed[mine].any(), (layer, head)
            changed[mine] = False
            assert not changed.any(), f"L{layer}.H{head} changed other heads' slices"


def test_no_future_leakage(tiny):
    lib = library_for(tiny)
    table = TokenTable.from_text(tiny.tokenizer, TEXTS[0], add_special_tokens=tiny.add_special_tokens)
    ids = torch.from_numpy(table.ids.copy())[None]
    other = ids.clone()
    other[0, -1] = (int(ids[0, -1]) + 7) % tiny.tokenizer.vocab_size  # a different last token
    with attach(tiny.model, lib, fraction=1.0, tokenizer=tiny.tokenizer):
        with torch.no_grad():
            a = tiny.model(input_ids=ids).logits
            b = tiny.model(input_ids=other).logits
    assert not torch.equal(a[0, -1], b[0, -1])
    assert (a[0, :-1] - b[0, :-1]).abs().max().item() <= 1e-6


def test_detach_restores_bit_identical_outputs(tiny):
    lib = library_for(tiny)
    before, _ = logits_of(tiny)
    previous = tiny.model.config._attn_implementation
    handle = attach(tiny.model, lib, fraction=0.5, tokenizer=tiny.tokenizer)
    during, _ = logits_of(tiny, handle=handle)
    assert tiny.model.config._attn_implementation == attn.NAME
    handle.detach()
    handle.detach()  # twice is harmless
    after, _ = logits_of(tiny)
    assert not torch.equal(before, during)
    assert torch.equal(before, after)
    assert tiny.model.config._attn_implementation == previous
    assert not any(m in attn.ATTACHED for m in attention_modules(tiny.model))


@pytest.mark.parametrize("arch, kv_heads", [("llama", 2), ("gemma3", 1)])
def test_gqa_query_heads_read_their_kv_group(tmp_path_factory, arch, kv_heads):
    loaded = load_model(str(build_tiny_model(arch, tmp_path_factory.mktemp("gqa"))))
    config = loaded.model.config
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, kv_heads)
    lib = library_for(loaded)  # head 0 of layer 0 is "bos"
    layer = 1  # a full-attention layer in both
    module = attention_modules(loaded.model)[layer]
    head_dim = module.head_dim
    hidden = []
    pre = module.register_forward_pre_hook(lambda mod, args, kwargs: hidden.append(kwargs["hidden_states"]),
                                            with_kwargs=True)
    for head in range(4):
        hidden.clear()
        lib_head = put(lib, layer, head, "bos")
        seen, hook = projection_inputs(loaded, layer)
        try:
            with attach(loaded.model, lib_head, heads=[(layer, head)], tokenizer=loaded.tokenizer) as handle:
                logits_of(loaded, TEXTS[:1], handle)
        finally:
            hook.remove()
        values = module.v_proj(hidden[0]).view(1, -1, config.num_key_value_heads, head_dim)
        expected = values[0, 0, head // (4 // kv_heads)]  # "bos": every query reads the value of token 0
        got = seen[0][0, :, head * head_dim:(head + 1) * head_dim]
        torch.testing.assert_close(got, expected.expand_as(got), atol=1e-6, rtol=0)
    pre.remove()


def windowed(matrix: np.ndarray, window: int) -> np.ndarray:
    """What a program's matrix must become on a sliding layer: keys more than
    `window - 1` back dropped, rows renormalised, an emptied row on its earliest key."""
    n = len(matrix)
    allowed = np.tril(np.ones((n, n), dtype=bool)) & ~np.tril(np.ones((n, n), dtype=bool), -window)
    kept = np.where(allowed, matrix, 0.0)
    mass = kept.sum(1, keepdims=True)
    earliest = np.eye(n)[[max(0, i - window + 1) for i in range(n)]]
    return np.where(mass > 0, kept / np.where(mass > 0, mass, 1), earliest)


def test_sliding_window_layers_keep_replaced_heads_inside_the_window(tmp_path_factory):
    """On a tiny Gemma 3 whose sliding layers see 6 keys, programs that reach further
    back ("bos" most of all) are cut to the window and renormalised there; the full
    layer gets the program as it is. Shown on the probabilities the layers use."""
    from headcode.compiler import compile_program
    from headcode.loaders.tiny import GEMMA_WINDOW

    loaded = load_model(str(build_tiny_model("gemma3", tmp_path_factory.mktemp("window"))))
    config = loaded.model.config
    assert config.layer_types == ["sliding_attention", "full_attention", "sliding_attention"]
    assert config.sliding_window == GEMMA_WINDOW
    lib = library_for(loaded)
    table = TokenTable.from_text(loaded.tokenizer, " ".join(TEXTS), add_special_tokens=True)
    assert len(table) > 4 * GEMMA_WINDOW
    with attach(loaded.model, lib, fraction=1.0, tokenizer=loaded.tokenizer) as handle, torch.no_grad():
        handle.set_inputs([table])
        out = loaded.model(input_ids=torch.from_numpy(table.ids.copy())[None], output_attentions=True)
    reached_past = 0
    for layer, kind in enumerate(config.layer_types):
        for head in range(loaded.n_heads):
            program = compile_program(lib.program_of(layer, head, Level.FULL)).evaluate(table)
            got = out.attentions[layer][0, head].double().numpy()
            if kind == "full_attention":
                np.testing.assert_allclose(got, program, atol=1e-6, rtol=0)
                continue
            reached_past += bool(np.tril(program, -GEMMA_WINDOW).any())
            assert not np.tril(got, -GEMMA_WINDOW).any(), f"L{layer}.H{head} reads outside its window"
            np.testing.assert_allclose(got, windowed(program, GEMMA_WINDOW), atol=1e-6, rtol=0)
            np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)
    assert reached_past >= 4  # the programs did reach past the window, so the cut was exercised


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batches_match_single_sequences(tiny, side):
    lib = library_for(tiny)
    with attach(tiny.model, lib, fraction=0.5, tokenizer=tiny.tokenizer) as handle:
        out, batch = logits_of(tiny, handle=handle, padding_side=side)
        for b, text in enumerate(TEXTS):
            alone, _ = logits_of(tiny, [text], handle)
            n = len(batch.tables[b])
            start = batch.starts[b]
            torch.testing.assert_close(out[b, start:start + n], alone[0], atol=1e-5, rtol=0)


def test_rebuilt_tables_need_no_texts(tiny):
    """Rows without a given table get one rebuilt from ids: same logits as exact tables."""
    lib = library_for(tiny)
    batch = encode(TEXTS, tiny.tokenizer, add_special_tokens=tiny.add_special_tokens)
    with attach(tiny.model, lib, fraction=1.0, tokenizer=tiny.tokenizer) as handle:
        exact = forward(tiny.model, batch, handle)
        handle.set_inputs([])
        with torch.no_grad():
            rebuilt = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                 position_ids=batch.position_ids).logits
    assert torch.equal(exact, rebuilt)


def test_tables_from_ids_match_tables_from_text(tiny):
    from headcode.loaders.corpora import open_corpus, sequences

    count = 0
    for seq in sequences(open_corpus(), tiny.tokenizer, 64, add_special_tokens=tiny.add_special_tokens):
        rebuilt = table_from_ids(tiny.tokenizer, seq.table.ids)
        assert np.array_equal(rebuilt.features, seq.table.features), seq.text
        count += 1
        if count == 40:
            break


def test_refuses_acausal_matrices(tiny):
    def future(table, heads):
        n = len(table)
        return np.full((len(heads), n, n), 1.0 / n)

    with attach(tiny.model, heads=[(0, 0)], matrices_fn=future) as handle:
        with pytest.raises(ValueError, match="later tokens"):
            logits_of(tiny, handle=handle)


# --- choosing heads and refusing bad input ----------------------------------------------


def test_fraction_picks_best_validation_iou_ties_by_head():
    identity = ModelIdentity("m", "LlamaForCausalLM", 2, 2, 2, "sha256:" + "0" * 64)
    lib = Library(model=identity, split=SPLIT, created=CREATED)
    lib = put(put(put(put(lib, 1, 1, "bos", validation={"iou": 0.9}), 0, 1, "bos", validation={"iou": 0.5}),
                  0, 0, "bos", validation={"iou": 0.5}), 1, 0, "bos")
    short = put(lib, 0, 1, "self", Level.SHORT, validation={"iou": 0.95})
    assert choose_heads(short, 4, fraction=0.25, level=Level.SHORT) == [(0, 1)]  # ranked within the level
    assert choose_heads(short, 4, fraction=0.25) == [(1, 1)]
    assert choose_heads(lib, 4, fraction=0.5) == [(1, 1), (0, 0)]
    assert choose_heads(lib, 4, fraction=0.75) == [(1, 1), (0, 0), (0, 1)]
    assert choose_heads(lib, 4, fraction=1.0)[-1] == (1, 0)  # no recorded IoU: last
    assert choose_heads(lib, 4, fraction=0.0) == []
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(UserError, match="from 0 to 1"):
            choose_heads(lib, 4, fraction=bad)
    with pytest.raises(UserError, match="explains only 3"):
        choose_heads(lib.without_head(1, 0), 4, fraction=1.0)
    with pytest.raises(UserError):
        choose_heads(lib, 4, heads=[(0, 0)], fraction=0.5)


def test_bad_input_is_refused(tiny):
    lib = library_for(tiny)
    with pytest.raises(UserError, match="outside the model"):
        attach(tiny.model, lib, heads=[(tiny.n_layers, 0)], tokenizer=tiny.tokenizer)
    with pytest.raises(UserError, match="no full program"):
        attach(tiny.model, lib.without_head(0, 0), heads=[(0, 0)], tokenizer=tiny.tokenizer)
    with pytest.raises(UserError, match="no short program"):
        attach(tiny.model, lib, heads=[(0, 0)], level=Level.SHORT, tokenizer=tiny.tokenizer)
    with pytest.raises(UserError, match="no head to replace"):
        attach(tiny.model, lib, heads=[], tokenizer=tiny.tokenizer)
    with pytest.raises(UserError, match="two whole numbers"):
        attach(tiny.model, lib, heads=[(0.7, 0.2)], tokenizer=tiny.tokenizer)
    other = lib.replace(model=ModelIdentity(**{**lib.model.to_json(), "fingerprint": "sha256:" + "1" * 64}))
    with pytest.raises(UserError, match="model mismatch"):
        attach(tiny.model, other, fraction=0.5, tokenizer=tiny.tokenizer)
    with attach(tiny.model, other, fraction=0.5, tokenizer=tiny.tokenizer, force=True) as handle:
        assert handle.warnings
        with pytest.raises(UserError, match="already has heads replaced"):
            attach(tiny.model, lib, fraction=0.5, tokenizer=tiny.tokenizer)
    with pytest.raises(UserError, match="Hugging Face transformers model"):
        attach(object(), lib, fraction=0.5)
    with pytest.raises(UserError, match="must be a headcode Library or the path"):
        attach(tiny.model, {"heads": []}, fraction=0.5)
    with pytest.raises(LibraryError):
        attach(tiny.model, "/nonexistent/library", fraction=0.5)


def test_attach_takes_a_library_path_and_the_tokenizer_saved_with_the_model(tiny, tmp_path, monkeypatch):
    lib = library_for(tiny)
    lib.save(tmp_path / "lib")
    with attach(tiny.model, str(tmp_path / "lib"), fraction=0.5) as handle, torch.no_grad():
        assert handle.tokenizer is not None  # found in the model's own directory
        tiny.model(input_ids=torch.tensor([[5, 6, 7]]))
    # A model whose directory holds no tokenizer: rows need set_inputs, and say so.
    monkeypatch.setattr(tiny.model.config, "_name_or_path", str(tmp_path))
    with attach(tiny.model, lib, fraction=0.5) as handle:
        with pytest.raises(UserError, match="no token table"):
            with torch.no_grad():
                tiny.model(input_ids=torch.tensor([[5, 6, 7]]))
        handle.set_inputs([])


# --- evaluation and the command ------------------------------------------------------


def test_perplexity_is_token_weighted_and_batch_independent(tiny):
    from headcode.replace.measure import perplexity

    tables = [TokenTable.from_text(tiny.tokenizer, t, add_special_tokens=tiny.add_special_tokens) for t in TEXTS]
    total, count = 0.0, 0
    for t in tables:  # by hand, one sequence at a time
        ids = torch.from_numpy(t.ids.copy())[None]
        with torch.no_grad():
            logp = torch.log_softmax(tiny.model(input_ids=ids).logits[0, :-1].double(), -1)
        total -= float(logp.gather(-1, ids[0, 1:, None]).sum())
        count += len(t) - 1
    for size in (1, 2, 8):
        ppl, tokens = perplexity(tiny.model, tables, batch_size=size)
        assert tokens == count
        assert ppl == pytest.approx(np.exp(total / count), rel=1e-5)


def test_qa_scores_only_the_answer_tokens(tiny):
    from headcode.replace.measure import _joined, qa_accuracy
    from headcode.replace.qa import builtin, load

    questions = builtin()
    assert len(questions) >= 30 and all(0 <= q.answer < len(q.choices) for q in questions)
    prompt = questions[0].prompt
    table, positions = _joined(tiny.tokenizer, prompt, "the big dog", tiny.add_special_tokens, 512)
    assert "".join(table.surfaces[p] for p in positions).strip() == "the big dog"
    assert positions == list(range(positions[0], len(table)))
    result = qa_accuracy(tiny.model, tiny.tokenizer, questions[:6], add_special_tokens=tiny.add_special_tokens)
    assert result["n"] == 6 and 0 <= result["accuracy"] <= 1 and 0 <= result["accuracy_norm"] <= 1
    with pytest.raises(UserError, match="unknown QA set"):
        load("trivia")


def test_curve_starts_untouched_and_replaces_more(tiny):
    from headcode.replace.measure import curve, perplexity

    lib = library_for(tiny)
    tables = [TokenTable.from_text(tiny.tokenizer, t, add_special_tokens=tiny.add_special_tokens) for t in TEXTS]
    points = curve(tiny.model, tiny.tokenizer, lib, tables, [0.5, 1])
    assert [p["fraction"] for p in points] == [0.0, 0.5, 1.0]
    assert [p["heads_replaced"] for p in points] == [0, len(lib) // 2, len(lib)]
    assert points[0]["perplexity"] == perplexity(tiny.model, tables)[0] and points[0]["increase"] == 0
    assert tiny.model.config._attn_implementation == "eager"  # every handle detached


def test_replace_command(tiny, tmp_path, capsys):
    import json

    from headcode.cli import main

    model_dir = tiny.model.config._name_or_path
    lib = library_for(tiny, name=model_dir)
    lib.save(tmp_path / "tiny.lib")
    png = tmp_path / "curve.png"
    args = ["replace", "--library", str(tmp_path / "tiny.lib"), "--max-len", "48", "--max-seqs", "6",
            "--fractions", "0.5,1", "--qa", "builtin,piqa", "--qa-limit", "5", "--json", "--png", str(png)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["sequences"] == 6
    assert [p["fraction"] for p in report["points"]] == [0.0, 0.5, 1.0]
    assert all(p["qa"]["builtin"]["n"] == 32 for p in report["points"])
    assert "piqa" in report["qa_skipped"] or "piqa" in report["points"][0]["qa"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(args[:-3]) == 0 and "perplexity" in capsys.readouterr().out  # the table form
    other = lib.replace(model=ModelIdentity(**{**lib.model.to_json(), "fingerprint": "sha256:" + "2" * 64}))
    other.save(tmp_path / "other.lib")
    assert main(["replace", "--library", str(tmp_path / "other.lib"), "--qa", "none", "--max-seqs", "2"]) == 2
    assert "model mismatch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replace", "--library", str(tmp_path / "tiny.lib"), "--fractions", "0.5,2"])
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep me")
    assert main(["replace", "--library", str(tmp_path / "tiny.lib"), "--measure-heads", str(precious)]) == 2
    assert "is not a library" in capsys.readouterr().err and (precious / "keep.txt").read_text() == "keep me"
    assert main(["replace", "--library", str(tmp_path / "tiny.lib"), "--heads", "L0.H1"]) == 2
    assert "give --measure-heads OUT.lib too" in capsys.readouterr().err
    measured = tmp_path / "measured.lib"
    assert main(["replace", "--library", str(tmp_path / "tiny.lib"), "--measure-heads", str(measured), "--heads",
                 "L0.H1", "--fractions", "0", "--qa", "none", "--max-len", "48", "--max-seqs", "2",
                 "--validation-seqs", "2", "--quiet"]) == 0
    before, after = Library.load(tmp_path / "tiny.lib"), Library.load(measured)
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [(0, 1)] and "kl_estimate" in after[0, 1][Level.FULL].validation  # the default


# --- the embedded model (slow) ----------------------------------------------------------


@pytest.fixture(scope="module")
def embedded():
    return load_model("smollm2-135m")


@pytest.mark.slow
def test_embedded_oracle_detach_and_padding(embedded):
    lib = library_for(embedded, name="smollm2-135m")
    batch = encode(TEXTS, embedded.tokenizer, add_special_tokens=embedded.add_special_tokens)
    base = forward(embedded.model, batch)
    real = batch.attention_mask.bool()
    with attach(embedded.model, heads=all_heads(embedded), matrices_fn=oracle(embedded, batch)) as handle:
        out = forward(embedded.model, batch, handle)
    assert (out - base)[real].abs().max().item() <= 1e-5
    with attach(embedded.model, lib, fraction=0.25, tokenizer=embedded.tokenizer) as handle:
        assert len(handle.heads) == 68  # 25% of 30 x 9, rounded half up
        replaced = forward(embedded.model, batch, handle)
        for b in range(len(TEXTS)):
            alone = forward(embedded.model, encode([batch.tables[b]]), handle)
            n = len(batch.tables[b])
            # Padding changes the shapes of every matmul, so float32 sums round differently:
            # up to ~3e-4 on logits of magnitude ~10 after 30 layers on some CPUs (a real
            # leak of padding into the rows would be of the order of the logits themselves).
            torch.testing.assert_close(replaced[b, :n], alone[0], atol=1e-3, rtol=1e-4)
    assert not torch.equal(replaced, base)
    assert torch.equal(forward(embedded.model, batch), base)


@pytest.mark.slow
def test_embedded_no_future_leakage_and_perplexity(embedded):
    from headcode.loaders.corpora import open_corpus, sequences
    from headcode.replace.measure import perplexity

    lib = library_for(embedded, name="smollm2-135m")
    tables = [s.table for s, _ in zip(sequences(open_corpus(), embedded.tokenizer, 64, splits=["test"],
                                                add_special_tokens=embedded.add_special_tokens), range(6))]
    ids = torch.from_numpy(tables[0].ids.copy())[None]
    other = ids.clone()
    other[0, -1] = (int(ids[0, -1]) + 1) % embedded.tokenizer.vocab_size
    with attach(embedded.model, lib, fraction=0.5, tokenizer=embedded.tokenizer):
        with torch.no_grad():
            a, b = embedded.model(input_ids=ids).logits, embedded.model(input_ids=other).logits
    assert (a[0, :-1] - b[0, :-1]).abs().max().item() <= 1e-5
    ppl, tokens = perplexity(embedded.model, tables)
    assert tokens > 100 and 2 < ppl < 100


# --- Gemma 3 270M (slow): one key/value head, sliding windows of 512 keys -------------


@pytest.fixture(scope="module")
def gemma():
    from headcode.loaders.models import GEMMA, REGISTRY

    pytest.importorskip(REGISTRY[GEMMA].package, reason="the Gemma packages are not installed (make install)")
    return load_model(GEMMA)


@pytest.mark.slow
def test_gemma_oracle_detach_padding_and_no_leak(gemma):
    lib = library_for(gemma, name="gemma3-270m")
    batch = encode(TEXTS, gemma.tokenizer, add_special_tokens=True)
    base = forward(gemma.model, batch)
    real = batch.attention_mask.bool()
    with attach(gemma.model, heads=all_heads(gemma), matrices_fn=oracle(gemma, batch)) as handle:
        out = forward(gemma.model, batch, handle)
    assert (out - base)[real].abs().max().item() <= 1e-4  # logits of magnitude ~30 after 18 layers
    with attach(gemma.model, lib, fraction=0.25, tokenizer=gemma.tokenizer) as handle:
        assert len(handle.heads) == 18  # 25% of 18 x 4
        replaced = forward(gemma.model, batch, handle)
        for b in range(len(TEXTS)):
            alone = forward(gemma.model, encode([batch.tables[b]]), handle)
            n = len(batch.tables[b])
            torch.testing.assert_close(replaced[b, :n], alone[0], atol=1e-3, rtol=1e-4)
        ids = torch.from_numpy(batch.tables[0].ids.copy())[None]
        other = ids.clone()
        other[0, -1] = (int(ids[0, -1]) + 1) % gemma.tokenizer.vocab_size
        with torch.no_grad():
            a, b = gemma.model(input_ids=ids).logits, gemma.model(input_ids=other).logits
        assert (a[0, :-1] - b[0, :-1]).abs().max().item() <= 1e-4
    assert not torch.equal(replaced, base)
    assert torch.equal(forward(gemma.model, batch), base)


@pytest.mark.slow
def test_gemma_sliding_layers_past_the_window(gemma):
    """A 600-token sequence, longer than the 512 keys of the sliding layers: each head's
    own attention as its program changes nothing, and a "bos" program on a sliding
    layer goes to the window's first key, on a full layer to token 0."""
    from headcode.loaders.corpora import open_corpus

    text = "\n".join(line for line, _ in zip(open_corpus().lines(), range(200)))
    table = TokenTable.from_text(gemma.tokenizer, text, max_len=600, add_special_tokens=True)
    n = len(table)
    assert n == 600
    ids = torch.from_numpy(table.ids.copy())[None]
    base = gemma.model.base_model
    with torch.no_grad():
        plain = base(input_ids=ids, output_attentions=True)
    own = [a[0].double().numpy() for a in plain.attentions]
    assert not own[0][0][599, :88].any() and own[5][0][599, :88].any()  # the model's own window
    with attach(gemma.model, heads=all_heads(gemma), matrices_fn=lambda t, heads: np.stack(
            [own[layer][head] for layer, head in heads])) as handle, torch.no_grad():
        handle.set_inputs([table])
        same = base(input_ids=ids).last_hidden_state
    assert (same - plain.last_hidden_state).abs().max().item() <= 1e-3
    lib = put(put(library_for(gemma, name="gemma3-270m"), 0, 0, "bos"), 5, 0, "bos")
    with attach(gemma.model, lib, heads=[(0, 0), (5, 0)], tokenizer=gemma.tokenizer) as handle, torch.no_grad():
        handle.set_inputs([table])
        got = base(input_ids=ids, output_attentions=True).attentions
    sliding, full = got[0][0, 0].double().numpy(), got[5][0, 0].double().numpy()
    first_seen = np.maximum(np.arange(n) - 511, 0)  # the earliest key each query may see
    assert np.array_equal(sliding, np.eye(n)[first_seen])
    assert np.array_equal(full, np.eye(n)[np.zeros(n, dtype=int)])


def test_heads_ranked_by_measured_effect(tiny, tmp_path, capsys):
    import json

    from headcode.cli import main
    from headcode.replace.measure import head_effects, perplexity, with_effects

    lib = library_for(tiny)
    tables = [TokenTable.from_text(tiny.tokenizer, t, add_special_tokens=tiny.add_special_tokens) for t in TEXTS]
    effects = head_effects(tiny.model, tiny.tokenizer, lib, tables, batch_size=2)
    assert set(effects) == set(lib)
    # Replaying the layers before a head from a clean run gives the whole forward's figure.
    base, _ = perplexity(tiny.model, tables, batch_size=2)
    for key in [next(iter(lib)), max(lib)]:
        with attach(tiny.model, lib, heads=[key], tokenizer=tiny.tokenizer) as handle:
            whole = perplexity(tiny.model, tables, handle, batch_size=2)[0] / base - 1
        assert effects[key]["ppl_increase"] == pytest.approx(whole, rel=1e-6, abs=1e-9)
    assert all(e["kl"] >= -1e-9 for e in effects.values())  # a divergence
    assert any(e["kl"] > 1e-6 for e in effects.values())
    measured = with_effects(lib, effects)
    gentlest = min(effects, key=lambda k: (round(effects[k]["ppl_increase"], 6), k))
    assert choose_heads(measured, len(lib), fraction=1 / len(lib), rank_by="ppl_increase") == [gentlest]
    closest = min(effects, key=lambda k: (round(effects[k]["kl"], 6), k))
    # A library that records the measured cost is ranked by its KL unless told otherwise.
    assert choose_heads(measured, len(lib), fraction=1 / len(lib)) == [closest]
    assert choose_heads(lib, len(lib), fraction=0.5) == choose_heads(lib, len(lib), fraction=0.5, rank_by="iou")
    assert measured[gentlest][Level.FULL].validation["iou"] == lib[gentlest][Level.FULL].validation["iou"]
    with pytest.raises(UserError, match="no validation 'ppl_increase'"):
        choose_heads(lib, len(lib), fraction=0.5, rank_by="ppl_increase")

    lib = library_for(tiny, name=tiny.model.config._name_or_path)
    lib.save(tmp_path / "tiny.lib")
    out = tmp_path / "measured.lib"
    args = ["replace", "--library", str(tmp_path / "tiny.lib"), "--max-len", "48", "--max-seqs", "4",
            "--validation-seqs", "3", "--fractions", "0.5", "--qa", "none", "--measure-heads", str(out), "--json",
            "--effects", "exact"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rank_by"] == "kl"
    assert all({"ppl_increase", "kl"} <= set(Library.load(out)[key][Level.FULL].validation) for key in lib)


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_headcode_attention_is_gemma_eager_attention(softcap):
    """Unattached, the registered function computes what Gemma's own eager attention
    does: its scaling, one key/value head for four query heads, soft-capping when
    passed (Gemma 3 passes none; Gemma 2 does), the additive mask."""
    from transformers.models.gemma3.modeling_gemma3 import eager_attention_forward

    torch.manual_seed(0)
    module = torch.nn.Module().eval()  # what both read of it: the groups, head_dim, training
    module.num_key_value_groups, module.head_dim = 4, 16
    query = torch.randn(2, 4, 9, 16) * 3
    key, value = torch.randn(2, 1, 9, 16) * 3, torch.randn(2, 1, 9, 16)
    mask = torch.triu(torch.full((9, 9), torch.finfo(torch.float32).min), 1)[None, None].expand(2, 1, 9, 9)
    want, want_w = eager_attention_forward(module, query, key, value, mask, scaling=0.0625, softcap=softcap)
    got, got_w = attn.attention(module, query, key, value, mask, scaling=0.0625, softcap=softcap)
    assert torch.equal(got_w, want_w) and torch.equal(got, want)
