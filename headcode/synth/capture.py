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

Reading checks what it reads, so a damaged capture is a one-line UserError naming
the file, never a traceback: `Capture.open` the manifest's structure (the fields
readers use, file names inside the capture), `attention` and `table` each file
(a regular file of the dtype, shape and length the manifest says; attention values
probabilities, checked on the part returned only).

The model reads exactly `table.ids` of each sequence (the token table's ids), through
its base model (the LM head is not needed for attention). `record_batch` runs several
sequences in one forward, padded on the right: in a causal model a real token's
row only reaches keys before it, so the padding after the last real token changes
none of its numbers, and forwards of 8 paragraphs are faster than one at a time
(`benchmarks/capture.py`, `split_capture`: 96 shipped paragraphs, 15.7 s one at a
time, 10.4 s in eights, float16 results equal).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headcode.errors import UserError
from headcode.fileio import NewDirectory, check_writable, read_bytes, read_text

FORMAT = "headcode-capture"
VERSION = 1
MANIFEST = "manifest.json"


def record_attention(model, ids, dtype=np.float16, layers: int | None = None) -> np.ndarray:
    """[layers, heads, n, n] of `dtype`: the softmax probabilities of every head for `ids`.

    With `layers`, only the first `layers` decoder layers run (a head of layer 3 costs
    4 layers' compute, not the whole model's) and only they are returned: the same
    numbers, since a layer's attention depends only on the layers before it."""
    return record_batch(model, [ids], dtype, layers)[0]


PAD = 0  # the id written after a short sequence of a batch: never read by a real token's row


def record_batch(model, sequences, dtype=np.float16, layers: int | None = None) -> list[np.ndarray]:
    """`record_attention` of several id sequences in one forward, padded on the right
    (see the module docstring); give it sequences of similar lengths (`dsl.tokens.by_length`)."""
    import torch

    lengths = [len(ids) for ids in sequences]
    # A copy (table ids are read-only), on the model's device (a GPU only on Ray workers given one).
    batch = torch.full((len(sequences), max(lengths)), PAD, dtype=torch.int64)
    for row, ids in enumerate(sequences):
        batch[row, :len(ids)] = torch.from_numpy(np.array(ids, dtype=np.int64))
    with torch.no_grad(), _first_layers(model.base_model, layers):
        out = model.base_model(batch.to(model.device), output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise UserError("the model returned no attention probabilities; load it with attn_implementation='eager'")
    results = []
    for row, n in enumerate(lengths):
        # Convert layer by layer with torch (multi-threaded, ~10x faster than numpy's
        # astype) straight into the result, without a float32 copy of all layers.
        result = np.empty((len(out.attentions), out.attentions[0].shape[1], n, n), dtype=dtype)
        target = torch.from_numpy(result)
        for layer, probabilities in enumerate(out.attentions):
            target[layer] = probabilities[row, :, :n, :n]
        results.append(result)
    return results


BATCH = 8  # sequences per forward when a split is captured (`dsl.tokens.by_length` groups them)


class _first_layers:
    """Run a base model with only its first `count` decoder layers: its one ModuleList
    of `config.num_hidden_layers` blocks is cut for the call and put back after.
    Nothing changes when `count` is None, or the list cannot be told apart."""

    def __init__(self, base, count: int | None):
        self.base, self.count, self.name = base, count, None

    def __enter__(self) -> None:
        import torch

        total = getattr(self.base.config, "num_hidden_layers", None)
        if self.count is None or not total or self.count >= total:
            return
        # transformers installs its attention-recording hooks on the first forward, on the
        # layers present then: install them on every layer before cutting, or a later
        # call with more layers would record only the first `count`.
        with contextlib.suppress(ImportError):
            from transformers.utils.output_capturing import maybe_install_capturing_hooks

            maybe_install_capturing_hooks(self.base)
        lists = [name for name, m in self.base.named_children()
                 if isinstance(m, torch.nn.ModuleList) and len(m) == total]
        if len(lists) == 1:
            self.name, self.full = lists[0], getattr(self.base, lists[0])
            setattr(self.base, self.name, self.full[:max(1, self.count)])

    def __exit__(self, *exc) -> None:
        if self.name is not None:
            setattr(self.base, self.name, self.full)


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
        read_manifest(out)  # refuses a manifest of some other tool (a damaged capture may be replaced)
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


MAX_HEADS = 2**16  # layers x heads of a capture at most (the largest models have ~16,000)
MAX_TABLE = 64 * 2**20  # bytes of one sequence's token table, unpacked, at most
_ATTENTION_FILE = re.compile(r"attn/[-\w]+\.npy", re.ASCII)
_TOKENS_FILE = re.compile(r"tokens/[-\w]+\.npz", re.ASCII)
_ONE = 0x3C00  # float16 1.0 as bits: a float16 is finite and in [+0, 1] iff its bits are <= this
_NEGATIVE_ZERO = 0x8000


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the capture at `path`, checked to be a headcode capture's of this
    version (its structure is `Capture.open`'s to check)."""
    path = Path(path)
    file = path / MANIFEST
    try:
        manifest = json.loads(read_text(file))
    except FileNotFoundError:
        raise UserError(f"{path}: not a headcode capture (no {MANIFEST}); make one with: headcode capture") from None
    except OSError as err:
        raise UserError(f"{file}: cannot read capture manifest: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{file}: not a capture manifest: not UTF-8 text (bad byte at offset {err.start})") from None
    except RecursionError:
        raise UserError(f"{file}: not a capture manifest: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, or an integer of more digits than Python converts
        raise UserError(f"{file}: not a capture manifest: {_cut(str(err), 120)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path}: {MANIFEST} is not a headcode capture manifest")
    if manifest.get("version") != VERSION:
        raise UserError(f"{path}: capture format version {_shown(manifest.get('version'))}, "
                        f"this headcode reads {VERSION}")
    return manifest


def check_manifest(manifest: dict, file: Path) -> None:
    """Refuse, in one line naming `file`, a manifest whose fields readers rely on are
    missing or of the wrong kind (layers, heads, every sequence's entry)."""

    def need(ok: bool, where: str, what: str, value) -> None:
        if not ok:
            raise UserError(f"{file}: {where} must be {what}, not {_shown(value)}")

    for key in ("layers", "heads"):
        value = manifest.get(key)
        need(_whole(value) and value >= 1, key, "a whole number of at least 1", value)
    layers, heads = manifest["layers"], manifest["heads"]
    if layers * heads > MAX_HEADS:
        raise UserError(f"{file}: {layers} layers x {heads} heads is over the limit of {MAX_HEADS:,} heads")
    for key in ("model", "split", "corpus"):
        if key in manifest:
            need(isinstance(manifest[key], str), key, "a string", manifest[key])
    if "tokens" in manifest:
        need(_whole(manifest["tokens"]), "tokens", "a whole number", manifest["tokens"])
    sequences = manifest.get("sequences")
    need(isinstance(sequences, list), "sequences", "a list", sequences)
    for k, e in enumerate(sequences):
        where = f"sequences[{k}]"
        need(isinstance(e, dict), where, "an object", e)
        need(_whole(e.get("n")) and e.get("n") >= 1, f"{where}.n", "a whole number of at least 1", e.get("n"))
        need(_whole(e.get("source")), f"{where}.source", "a whole number", e.get("source"))
        for key in ("split", "text"):
            need(isinstance(e.get(key), str), f"{where}.{key}", "a string", e.get(key))
        for key, pattern, example in (("attention", _ATTENTION_FILE, "attn/000000.npy"),
                                      ("tokens", _TOKENS_FILE, "tokens/000000.npz")):
            value = e.get(key)
            need(isinstance(value, str) and pattern.fullmatch(value) is not None, f"{where}.{key}",
                 f"a file name inside the capture like {example!r}", value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value) -> str:
    """A value as an error message shows it: its repr, cut to a few dozen characters
    (the type for containers, whose repr could be long to build)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    if value is None:
        return "missing (or null)"
    return _cut(repr(value[:60] if isinstance(value, str) else value))


@dataclass(frozen=True)
class Capture:
    """A capture directory opened for reading; attention arrays are memory-mapped.

    `open` checks the manifest's structure; `attention` and `table` check each file as
    they read it (a regular file of the shape, dtype and length the manifest says,
    attention values probabilities). Every refusal is one UserError line naming the file.
    """

    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike) -> Capture:
        path = Path(path)
        manifest = read_manifest(path)
        check_manifest(manifest, path / MANIFEST)
        return cls(path, manifest)

    def __len__(self) -> int:
        return len(self.manifest["sequences"])

    @property
    def layers(self) -> int:
        return self.manifest["layers"]

    @property
    def heads(self) -> int:
        return self.manifest["heads"]

    @property
    def model(self) -> str:
        return self.manifest.get("model", "an unnamed model")

    def entry(self, i: int) -> dict:
        return self.manifest["sequences"][i]

    def indices(self, split: str | None = None) -> list[int]:
        """Sequence indices, all or those of one split."""
        return [i for i, e in enumerate(self.manifest["sequences"]) if split is None or e["split"] == split]

    def attention(self, i: int, layer: int | None = None, head: int | None = None) -> np.ndarray:
        """Memory-mapped float16 [layers, heads, n, n] of sequence i (read-only); with
        `layer`, that layer's [heads, n, n]; with `head` too, that head's [n, n].

        The file's header is checked (shape, dtype, length) and so are the values of the
        part returned, which are thereby read: each must be a probability, in [0, 1]
        (no NaN). The check compares float16 bits as integers: about 0.5 ms for 30 x 9
        heads of 128 tokens, where profiling them takes ~35 ms.
        """
        entry = self.entry(i)
        file = self.path / entry["attention"]
        n = entry["n"]
        expected = (self.layers, self.heads, n, n)
        _check_regular(file, "attention")
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:  # EOFError: an empty file
            raise UserError(f"{file}: cannot read attention: {_cut(_reason(err), 120)}") from None
        if not isinstance(array, np.ndarray):  # an .npz archive
            array.close()
            raise UserError(f"{file}: cannot read attention: not an .npy array")
        if array.dtype != np.dtype("<f2"):
            raise UserError(f"{file}: attention must be float16 ('<f2'), is an array of {array.dtype.str!r}")
        if array.shape != expected:
            raise UserError(f"{file}: attention has shape {list(array.shape)}, the manifest says "
                            f"{list(expected)} ([layers, heads, n, n])")
        part = array if layer is None else array[layer] if head is None else array[layer, head]
        _check_probabilities(file, part, (() if layer is None else (layer,) if head is None else (layer, head)))
        return part

    def table(self, i: int):
        """The TokenTable of sequence i, checked to have the manifest's n tokens."""
        import lzma
        import zipfile
        import zlib

        from headcode.dsl.tokens import TokenTable

        entry = self.entry(i)
        file = self.path / entry["tokens"]
        try:
            data = read_bytes(file, limit=MAX_TABLE)
        except OSError as err:
            raise UserError(f"{file}: cannot read token table: {err.strerror or err}") from None
        try:
            arrays = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(arrays, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with arrays:
                unpacked = sum(info.file_size for info in arrays.zip.infolist())
                if unpacked > MAX_TABLE:
                    raise ValueError(f"{unpacked:,} bytes unpacked, over the limit of {MAX_TABLE:,}")
                table = TokenTable.from_arrays(dict(arrays))
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError,
                NotImplementedError, RuntimeError) as err:  # the ways a damaged archive fails to unpack
            raise UserError(f"{file}: cannot read token table: {_cut(_reason(err), 120)}") from None
        if len(table) != entry["n"]:
            raise UserError(f"{file}: token table has {len(table)} tokens, the manifest says {entry['n']}")
        return table


def _check_regular(file: Path, what: str) -> None:
    """Refuse what is not a regular file (a FIFO would block np.load, a device be mapped)."""
    try:
        info = file.stat()
    except OSError as err:
        raise UserError(f"{file}: cannot read {what}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{file}: cannot read {what}: not a regular file")


def _check_probabilities(file: Path, part: np.ndarray, prefix: tuple[int, ...]) -> None:
    """Refuse a (float16) attention array holding anything but probabilities: a NaN, an
    infinity, a negative number or one over 1, naming the first such entry."""
    bits = part.view(np.uint16)
    if bits.size == 0 or bits.max() <= _ONE:
        return
    bad = (bits > _ONE) & (bits != _NEGATIVE_ZERO)
    if not bad.any():
        return
    where = prefix + tuple(int(k) for k in np.unravel_index(int(np.argmax(bad)), part.shape))
    names = ("layer", "head", "query", "key")
    at = ", ".join(f"{name} {k}" for name, k in zip(names, where))
    raise UserError(f"{file}: attention value {float(part[where[len(prefix):]])} at {at} is not a probability "
                    "(a damaged capture?)")


def _reason(err: BaseException) -> str:
    """An exception's message without numpy's echo of the file name."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).replace("\n", " ") or type(err).__name__
