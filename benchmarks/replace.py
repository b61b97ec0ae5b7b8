"""Benchmark: forward time with 25% of heads replaced by programs vs the eager baseline.

Both are measured in the same run, on the same batches, alternating (so a busy
machine slows both alike); each time is the median over repeats of one forward
over every batch. The replaced forward includes everything replacement costs:
handing the token tables over, evaluating every chosen head's program on every
row (Numba kernels), and the substitution inside attention.

The library: `--library LIB` if given, else the bundled one for the model if the
package ships it, else one built here with `prev(1) else bos` for every head
("built: ..." in the output). Heads are chosen as `attach(fraction=0.25)` chooses
them (by the library's recorded validation figures).

Prints one JSON object: model, library, heads_replaced, batches, batch_size, tokens,
eager_s, replaced_s, ratio (replaced / eager), dispatch_s (the "headcode" attention
with no head replaced, i.e. the cost of the registry route alone) and
programs_s (program evaluation alone, per run over all batches).

    .venv/bin/python benchmarks/replace.py [--model smollm2-135m] [--library LIB] [--batches 4]
                                           [--batch-size 8] [--tokens 128] [--repeats 5] [--fraction 0.25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def library_for(loaded, path: str | None):
    from headcode.library import Library, available, bundled, identity_of

    if path:
        return Library.load(path), path
    if loaded.name in available():
        return bundled(loaded.name), f"bundled:{loaded.name}"
    program = "prev(1) else bos"
    identity = identity_of(loaded.name, loaded.model, loaded.tokenizer)
    lib = Library(model=identity, corpus={"name": "stories", "split_seed": 0}, created="2026-01-01T00:00:00Z")
    for layer in range(loaded.n_layers):
        for head in range(loaded.n_heads):
            lib = lib.with_head(layer, head, program, validation={"iou": 0.5})
    return lib, f"built: '{program}' for every head"


def windows(loaded, count: int, tokens: int):
    from headcode.loaders.corpora import open_corpus, sequences

    tables = []
    for seq in sequences(open_corpus(), loaded.tokenizer, tokens, add_special_tokens=loaded.add_special_tokens,
                         shape="windows"):
        if len(seq.table) == tokens:
            tables.append(seq.table)
            if len(tables) == count:
                return tables
    raise SystemExit(f"the stories give only {len(tables)} windows of {tokens} tokens; lower --batches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--library", metavar="LIB", help="the library (default: the bundled one, else built)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.25)
    args = parser.parse_args()

    from headcode.loaders.models import load_model
    from headcode.replace import attach, encode, forward

    loaded = load_model(args.model)
    lib, label = library_for(loaded, args.library)
    tables = windows(loaded, args.batches * args.batch_size, args.tokens)
    batches = [encode(tables[k:k + args.batch_size]) for k in range(0, len(tables), args.batch_size)]
    model = loaded.model

    def run(handle=None) -> float:
        start = time.perf_counter()
        for batch in batches:
            forward(model, batch, handle)
        return time.perf_counter() - start

    run()  # warm up: first-call allocations, Numba kernels loaded from the disk cache
    with attach(model, lib, fraction=args.fraction, tokenizer=loaded.tokenizer) as handle:
        run(handle)
        heads = list(handle.heads)
    eager, replaced, dispatch = [], [], []
    for _ in range(args.repeats):
        eager.append(run())
        with attach(model, lib, fraction=args.fraction, tokenizer=loaded.tokenizer) as handle:
            replaced.append(run(handle))
        with attach(model, lib, heads=[], tokenizer=loaded.tokenizer) as handle:
            dispatch.append(run(handle))
    programs = []
    from headcode.compiler import ProgramBatch

    batch_programs = ProgramBatch([lib.program_of(*key) for key in sorted(heads)])
    for _ in range(args.repeats):
        start = time.perf_counter()
        for table in tables:
            batch_programs.evaluate(table)
        programs.append(time.perf_counter() - start)
    eager_s, replaced_s = statistics.median(eager), statistics.median(replaced)
    print(json.dumps({
        "model": loaded.name, "library": label, "fraction": args.fraction, "heads_replaced": len(heads),
        "heads_in_model": loaded.n_layers * loaded.n_heads, "batches": len(batches), "batch_size": args.batch_size,
        "tokens": args.tokens, "repeats": args.repeats,
        "eager_s": round(eager_s, 4), "replaced_s": round(replaced_s, 4), "ratio": round(replaced_s / eager_s, 3),
        "dispatch_s": round(statistics.median(dispatch), 4), "programs_s": round(statistics.median(programs), 4),
    }, indent=1))


if __name__ == "__main__":
    main()
