"""Tiny randomly initialised models, built locally, that tests load as local paths.

One per attention family the project handles, each with a tokenizer of its real
kind trained on a few sentences (nothing is downloaded):

  gpt2    byte-level BPE, no special tokens added; 2 layers x 2 heads.
  llama   byte-level BPE, BOS (`<s>`, id 0) prepended; 2 layers x 4 query heads
          sharing 2 key/value heads (GQA 2:1).
  gemma3  SentencePiece-style BPE (`▁` word starts, byte fallback: a character
          outside the vocabulary becomes one `<0xNN>` piece per UTF-8 byte), BOS
          (`<bos>`, id 2) prepended, as Gemma's; 3 layers x 4 query heads sharing
          **one** key/value head (GQA 4:1), head_dim 16 (not hidden/heads, as in
          Gemma), layers sliding / full / sliding with a window of
          `GEMMA_WINDOW` keys, so a sentence of a dozen tokens is longer than it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ARCHITECTURES = ("gpt2", "llama", "gemma3")
GEMMA_WINDOW = 6  # keys a query of a sliding layer sees, itself included

_TINY_TEXT = (
    "Tom saw a big dog. The dog ran to Tom, and Tom said: \"Hello, dog!\"\n\n"
    "Lily had a red ball. She liked to play with it in the park every day.\n"
    "One day the ball rolled away. Lily was sad, but her friend found it."
)


def build_tiny_model(arch: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny randomly initialised model of `arch` (see the module docstring)
    and its tokenizer to `out_dir`; load it back with `load_model(str(out_dir))`."""
    import torch
    from transformers import (
        Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
    )

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {arch!r}; use one of {', '.join(ARCHITECTURES)}")
    tokenizer = _sentencepiece_tokenizer() if arch == "gemma3" else _byte_level_tokenizer(bos=arch == "llama")
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(
            n_layer=2, n_head=2, n_embd=32, n_positions=256, vocab_size=vocab, bos_token_id=0, eos_token_id=1
        ))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
            intermediate_size=64, max_position_embeddings=256, vocab_size=vocab,
            bos_token_id=0, eos_token_id=1,
        ))
    else:
        model = Gemma3ForCausalLM(Gemma3TextConfig(
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, head_dim=16, hidden_size=32,
            intermediate_size=64, max_position_embeddings=256, vocab_size=vocab, query_pre_attn_scalar=16,
            sliding_window=GEMMA_WINDOW, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            pad_token_id=0, eos_token_id=1, bos_token_id=2,
        ))
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _byte_level_tokenizer(bos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_TINY_TEXT.splitlines(), trainer)
    if bos:
        bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")


def _sentencepiece_tokenizer():
    """Gemma's kind: spaces become `▁` glued to the next word, merges learnt within
    words, and any character not in the (small) vocabulary falls back to its bytes."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0..3, as Gemma's
    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.normalizer = normalizers.Replace(" ", "▁")
    learner.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    learner.train_from_iterator(_TINY_TEXT.splitlines(), trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    learnt = json.loads(learner.to_str())["model"]
    # Byte pieces right after the specials (Gemma has them at ids 3..258), then the learnt ones.
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [p for p, _ in sorted(learnt["vocab"].items(), key=lambda kv: kv[1]) if p not in specials]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    sp = Tokenizer(models.BPE(vocab={p: i for i, p in enumerate(pieces)}, merges=merges, unk_token="<unk>",
                              byte_fallback=True, fuse_unk=True))
    sp.normalizer = normalizers.Replace(" ", "▁")
    sp.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    sp.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    sp.add_special_tokens(specials)
    sp.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=sp, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
