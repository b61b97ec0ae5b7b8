"""The attention store: every layer's and head's attention for every sequence, on disk.

Layout of a capture directory:
  manifest.json       what was captured (model, corpus, settings, library versions) and
                      one entry per sequence: its source text (the sequence is its first
                      n tokens), split, source (line or story number), n and file names;
  attn/000000.npy     float16 [layers, heads, n, n], row-stochastic and causal, opened
                      with np.load(mmap_mode="r") so a reader touches only what it uses;
  tokens/000000.npz   the sequence's token table (TokenTable.to_arrays(); no pickle).

`capture()` streams: one sequence is tokenized, run, converted and written before the
next is read, so memory stays at one sequence's attention whatever the corpus size.
Everything is written into a temporary directory beside the target and swapped into
place at the end (`fileio.NewDirectory`): an interrupted capture leaves the previous
one (or nothing), never a half-written store. A target that exists, is not empty and is not a capture is
refused, so a typo cannot replace someone's files.

The model reads exactly `table.ids` of each sequence (the token table's ids), through
its base model (the LM head is not needed for attention), one sequence at a time so
no padding is involved.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headcode.errors import UserError
from headcode.fileio import NewDirectory, check_writable, read_text

FORMAT = "headcode-capture"
VERSION = 1
MANIFEST = "manifest.json"


def record_attention(model, ids, dtype=np.float16) -> np.ndarray:
    """[layers, heads, n, n] of `dtype`: the softmax probabilities of every head for `ids`."""
    import torch

    batch = torch.from_numpy(np.array(ids, dtype=np.int64)).unsqueeze(0)  # a copy: table ids are read-only
    with torch.no_grad():
        out = model.base_model(batch, output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise UserError("the model returned no attention probabilities; load it with attn_implementation='eager'")
    # Convert layer by layer with torch (multi-threaded, ~10x faster than numpy's
    # astype) straight into the result, without a float32 copy of all layers.
    result = np.empty((len(out.attentions), *out.attentions[0].shape[1:]), dtype=dtype)
    target = torch.from_numpy(result)
    for layer, probabilities in enumerate(out.attentions):
        target[layer] = probabilities[0]
    return result


class CaptureWriter:
    """Writes a capture into a temporary directory; `commit()` puts it at `out`."""

    def __init__(self, out: str | os.PathLike, meta: dict):
        self.out = Path(out)
        check_target(self.out)
        self.new = NewDirectory(self.out)
        self.tmp = self.new.path
        (self.tmp / "attn").mkdir()
        (self.tmp / "tokens").mkdir()
        self.meta = dict(meta)
        self.entries: list[dict] = []

    def add(self, text: str, split: str, source: int, table, attention: np.ndarray) -> None:
        n = len(table)
        if attention.ndim != 4 or attention.shape[2:] != (n, n):
            raise ValueError(f"attention of shape {attention.shape} does not fit a sequence of {n} tokens")
        stem = f"{len(self.entries):06d}"
        np.save(self.tmp / "attn" / f"{stem}.npy", attention.astype(np.float16, copy=False))
        np.savez(self.tmp / "tokens" / f"{stem}.npz", **table.to_arrays())
        self.entries.append(
            {"n": n, "split": split, "source": source, "text": text,
             "attention": f"attn/{stem}.npy", "tokens": f"tokens/{stem}.npz"}
        )

    def commit(self) -> Path:
        if not self.entries:
            self.abort()
            raise UserError("no sequences to capture (empty corpus, or none in the chosen split)")
        layers, heads = np.load(self.tmp / self.entries[0]["attention"], mmap_mode="r").shape[:2]
        manifest = {
            "format": FORMAT, "version": VERSION, "dtype": "float16",
            "layout": "[layers, heads, query, key]", "layers": int(layers), "heads": int(heads),
            **self.meta,
            "tokens": sum(e["n"] for e in self.entries), "sequences": self.entries,
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        return self.new.commit()

    def abort(self) -> None:
        self.new.abort()


def check_target(out: str | os.PathLike) -> None:
    """Refuse a target that exists and is not a capture (a file, or a directory of other things)."""
    out = Path(out)
    if out.is_file():
        raise UserError(f"{out}: is a file; give a directory for the capture")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"{out}: exists, is not empty and is not a headcode capture; give a new or empty directory")
    if (out / MANIFEST).is_file():
        Capture.open(out)  # refuses a manifest of some other tool
    check_writable(out, directory=True, what="capture")


def capture(loaded, sequences: Iterable, out: str | os.PathLike, meta: dict, limit: int | None = None,
            progress: bool = True) -> Path:
    """Run `loaded` (a loaders.models.LoadedModel) on `sequences` (loaders.corpora.Sequence)
    and store every head's attention at `out`; at most `limit` sequences."""
    from tqdm import tqdm

    writer = CaptureWriter(out, {
        "model": loaded.name, "model_type": loaded.model.config.model_type,
        "kv_heads": loaded.n_kv_heads, "add_special_tokens": loaded.add_special_tokens, **meta,
        "versions": {name: _version(name) for name in ("headcode", "torch", "transformers")},
    })
    bar = tqdm(total=limit, unit="seq", file=sys.stderr, disable=not progress, desc="capture")
    tokens = 0
    try:
        for seq in sequences:
            if limit is not None and len(writer.entries) >= limit:
                break
            writer.add(seq.text, seq.split, seq.source, seq.table, record_attention(loaded.model, seq.table.ids))
            tokens += len(seq.table)
            bar.set_postfix(tokens=tokens, refresh=False)
            bar.update(1)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Capture:
    """A capture directory opened for reading; attention arrays are memory-mapped."""

    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike) -> Capture:
        path = Path(path)
        try:
            manifest = json.loads(read_text(path / MANIFEST))
        except FileNotFoundError:
            raise UserError(f"{path}: not a headcode capture (no {MANIFEST}); make one with: headcode capture") from None
        except OSError as err:
            raise UserError(f"{path / MANIFEST}: cannot read capture manifest: {err.strerror or err}") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise UserError(f"{path / MANIFEST}: not a capture manifest: {str(err)[:120] or 'nested too deeply'}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise UserError(f"{path}: {MANIFEST} is not a headcode capture manifest")
        if manifest.get("version") != VERSION:
            raise UserError(f"{path}: capture format version {manifest.get('version')}, this headcode reads {VERSION}")
        return cls(path, manifest)

    def __len__(self) -> int:
        return len(self.manifest["sequences"])

    @property
    def layers(self) -> int:
        return int(self.manifest["layers"])

    @property
    def heads(self) -> int:
        return int(self.manifest["heads"])

    def entry(self, i: int) -> dict:
        return self.manifest["sequences"][i]

    def indices(self, split: str | None = None) -> list[int]:
        """Sequence indices, all or those of one split."""
        return [i for i, e in enumerate(self.manifest["sequences"]) if split is None or e["split"] == split]

    def attention(self, i: int) -> np.ndarray:
        """Memory-mapped float16 [layers, heads, n, n] of sequence i (read-only)."""
        file = self.path / self.entry(i)["attention"]
        try:
            return np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UserError(f"{file}: cannot read attention: {err}") from None

    def table(self, i: int):
        """The TokenTable of sequence i."""
        from headcode.dsl.tokens import TokenTable

        file = self.path / self.entry(i)["tokens"]
        try:
            with np.load(file, allow_pickle=False) as arrays:
                return TokenTable.from_arrays(dict(arrays))
        except (OSError, ValueError) as err:
            raise UserError(f"{file}: cannot read token table: {err}") from None
