"""Benchmark: capture speed, peak memory and model load times of the embedded model.

Prints one JSON object:
  first_load_s       load_model("smollm2-135m") with an empty cache (GGUF de-quantised
                     and saved as safetensors), in a fresh process;
  second_load_s      the same in another fresh process, now from that cache;
  import_s           importing torch and transformers (not in either load time);
  sequences, tokens  captured: 200 sequences of exactly 128 tokens;
  capture_s, tokens_per_s   wall time of `capture` (tokenizing, the forward passes
                     with attentions, float16 conversion and writing);
  peak_rss_mb        this process's peak resident memory (model load + capture);
  first_load_peak_rss_mb   the first child's, during conversion;
  store_mb           size of the capture on disk (what streaming keeps out of RAM);
  split_capture      an explain split held in memory (`data.record`): 96 paragraphs of
                     the shipped stories (20 to 160 tokens) captured one forward per
                     sequence and then in `dsl.tokens.by_length` forwards of
                     `capture.BATCH`, in this process: both times, their ratio and
                     the largest difference between the two float16 results.

Runs offline with a temporary cache and output directory, removed at the end.
    .venv/bin/python benchmarks/capture.py [--sequences 200] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One load in a fresh process. torch and transformers are imported before the clock
# starts (their import time, ~2 s, is the same with or without a cache; reported apart).
CHILD = """
import json, time
start = time.perf_counter()
import torch, transformers
from headcode.loaders.models import load_model
imported = time.perf_counter()
load_model("smollm2-135m")
print(json.dumps({"import": imported - start, "load": time.perf_counter() - imported}))
"""


def load_in_child() -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def source_text() -> str:
    """Plain English text: the default corpus, else the development copy of TinyStories."""
    from headcode.errors import UserError
    from headcode.loaders.corpora import open_corpus

    candidates = ["stories", str(Path(__file__).resolve().parents[1].parent / "shared/data/tinystories/dev.txt")]
    for spec in candidates:
        try:
            return " ".join(p for doc in open_corpus(spec).documents() for p in doc)
        except UserError:
            continue
    raise SystemExit("no text to benchmark on: the default corpus (headcode/loaders/data/stories.txt) is missing")


def lines_file(path: Path, count: int, chars: int = 1200) -> Path:
    """`count` lines of running text, each long enough to give more than 128 tokens."""
    text = " ".join(source_text().split())
    step = max(1, (len(text) - chars) // count)
    lines = []
    for k in range(count):
        start = text.find(" ", k * step) + 1
        lines.append(text[start : start + chars].rsplit(" ", 1)[0])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="headcode-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["HEADCODE_CACHE"] = str(tmp / "cache")
        first = load_in_child()
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        second = load_in_child()

        from headcode.loaders.corpora import open_corpus, sequences
        from headcode.loaders.models import load_model
        from headcode.synth.capture import Capture, capture

        loaded = load_model("smollm2-135m")

        corpus = open_corpus(str(lines_file(tmp / "lines.txt", args.sequences)))
        seqs = sequences(corpus, loaded.tokenizer, args.tokens, one_per_line=True,
                         add_special_tokens=loaded.add_special_tokens)
        start = time.perf_counter()
        out = capture(loaded, seqs, tmp / "capture", {"corpus": "benchmark"}, limit=args.sequences, progress=False)
        seconds = time.perf_counter() - start
        stored = Capture.open(out)
        lengths = {e["n"] for e in stored.manifest["sequences"]}
        if lengths != {args.tokens}:
            raise SystemExit(f"benchmark lines gave sequences of {sorted(lengths)} tokens, not all {args.tokens}")
        store_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        tokens = stored.manifest["tokens"]
        print(json.dumps({
            "model": "smollm2-135m",
            "first_load_s": round(first["load"], 2),
            "second_load_s": round(second["load"], 3),
            "import_s": round(second["import"], 2),
            "sequences": len(stored),
            "tokens": tokens,
            "capture_s": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "first_load_peak_rss_mb": round(child_peak, 1),
            "store_mb": round(store_bytes / 2**20, 1),
            "torch_threads": __import__("torch").get_num_threads(),
            "split_capture": split_capture(loaded),
        }, indent=1))


def split_capture(loaded, count: int = 96) -> dict:
    import numpy as np

    from headcode.dsl.tokens import by_length
    from headcode.loaders.corpora import SplitSpec
    from headcode.synth import capture, data

    spec = SplitSpec(corpus="stories", shape="paragraphs", max_len=160, train=count, validation=1, test=1)
    tables = data.cut(loaded, spec, names=("train",))["train"].tables
    start = time.perf_counter()
    alone = [capture.record_attention(loaded.model, t.ids) for t in tables]
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = [None] * len(tables)
    for group in by_length(tables, capture.BATCH):
        for k, a in zip(group, capture.record_batch(loaded.model, [tables[k].ids for k in group])):
            batched[k] = a
    batch_s = time.perf_counter() - start
    return {"sequences": len(tables), "tokens": sum(len(t) for t in tables), "batch": capture.BATCH,
            "one_at_a_time_s": round(one_s, 2), "batched_s": round(batch_s, 2), "speedup": round(one_s / batch_s, 2),
            "max_abs_diff": float(max(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()
                                      for a, b in zip(alone, batched)))}


if __name__ == "__main__":
    main()
