"""Score-form size benchmark: what a smaller full level costs. Fits the score form
alone (no named-pattern extension) to the heads of a few layers with each setting
of `FitSettings.head_entries`, and prints JSON: test IoU, median and mean program
characters, median size (atoms) and fit seconds per setting, all in one run.

    .venv/bin/python benchmarks/score_form_size.py [--corpus FILE] [--layers 0,3,6,10,14,18,22,26,29]
                                                   [--entries all,256,128]

Default corpus: ../shared/data/tinystories/dev.txt when it is there, else the
shipped stories; paragraphs of at most 160 tokens, 300 train / 60 validation /
100 test, as `benchmarks/explain.py` cuts them.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from headcode.heads import Head
from headcode.loaders.corpora import SplitSpec
from headcode.loaders.models import load_model
from headcode.synth import data, scoreform
from headcode.synth.scoring import score_candidates

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories" / "dev.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(DEV) if DEV.is_file() else "stories")
    parser.add_argument("--layers", default="0,3,6,10,14,18,22,26,29")
    parser.add_argument("--entries", default="all,256,128", help="head_entries settings ('all': no bound)")
    args = parser.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    spec = SplitSpec(corpus=args.corpus, shape="paragraphs", max_len=160, train=300, validation=60, test=100)
    loaded = load_model("smollm2-135m")
    splits = data.cut(loaded, spec)
    for split in splits.values():
        data.record(loaded, split, progress=False)
    train, test = splits["train"], splits["test"]
    vocab = scoreform.vocabulary(train.tables)
    feats = [scoreform.features(t, vocab) for t in train.tables]
    report = {"corpus": args.corpus, "layers": layers, "heads": len(layers) * loaded.n_heads, "settings": {}}
    for entries in args.entries.split(","):
        fit = dataclasses.replace(scoreform.FitSettings(), head_entries=None if entries == "all" else int(entries))
        prepared = scoreform.batches(feats, len(vocab), fit.batch)
        start = time.perf_counter()
        programs = {}
        for layer in layers:
            params = scoreform.fit_layer(prepared, lambda k: train.attention[k], layer, loaded.n_heads, len(vocab), fit)
            programs.update({Head(layer, h): scoreform.to_program(p, vocab) for h, p in enumerate(params)})
        seconds = time.perf_counter() - start
        scores = score_candidates(test, {h: {0: p} for h, p in programs.items()}, jsd=False)
        chars = [p.chars for p in programs.values()]
        report["settings"][entries] = {
            "test_iou": round(float(np.mean([s[0].iou for s in scores.values()])), 4),
            "median_chars": int(np.median(chars)), "mean_chars": int(np.mean(chars)),
            "median_size": int(np.median([p.size for p in programs.values()])), "fit_s": round(seconds, 1)}
        print(entries, report["settings"][entries], file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
