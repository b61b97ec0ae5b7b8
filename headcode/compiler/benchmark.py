"""The kernel benchmark behind `benchmarks/kernels.py` and `headcode bench kernels`.

Every figure is a ratio or a time measured in this run, on the same programs and
the same 128-token sequence:

  ms_per_300_programs   one kernel call running 300 distinct programs
  ms_first_build_300_programs / ms_batch_build_300_programs
                        building the batch of those programs (lowering, packing):
                        the first time, and the best of three builds after it
  speedup_vs_reference  NumPy reference evaluator / kernels (per program)
  speedup_vs_python     plain-Python nested loops (`loops`) / kernels (per program)
  cold_compile_s        a fresh process with an empty Numba cache: import, compile,
                        run the 300 programs once
  warm_load_s           the same in a second fresh process, cache filled
  ms_per_fitted_program one kernel call running 68 programs shaped like fitted ones
                        (`fitted_programs`: a mixture of three softmaxes of ~43 terms
                        with word tables), per program, lexical columns included
  fitted_speedup_vs_reference  NumPy reference / kernels on those programs
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from headcode import dsl
from headcode.dsl.tokens import TokenTable

TEXT = (
    'Once upon a time , a little girl named Lily found a red ball in the park . She said , " Look , '
    'Tom ! A ball ! " Tom ran to her and they played all day . The sun was warm and the sky was blue . '
    'At 5 o\'clock , Mom called them home . " Time for dinner ! " she said . Lily took the ball and '
    'Tom took his kite . They were tired but happy . That night , Lily dreamed of the park , the ball '
    'and her friend Tom . The next day , they went back to the park again and found 3 more balls under '
    'a big tree near the pond .'
).split()

CLASSES = ("punct", "comma", "sent_end", "quote", "newline", "cap", "digit", "closed")
WORDS = ("the", "a", "and", ",", ".", "she", "he", "they", "to", "was", "tom", "lily", "ball")


def sequence(n: int = 128) -> TokenTable:
    words = (TEXT * (n // len(TEXT) + 1))[:n]
    return TokenTable.from_words(words)


def programs(count: int = 300, seed: int = 0) -> list[str]:
    """`count` programs with distinct canonical ids, covering every construct."""
    rng = random.Random(seed)
    simple = [f"prev({k})" for k in range(1, 9)] + [f"window({w})" for w in (2, 3, 4, 8, 16)]
    simple += ["self", "bos", "uniform", "same_token else bos", "induction else bos", "word_start",
               "sent_start", "uniform(same_sent)"] + [f"last({c}) else bos" for c in CLASSES]
    simple += [f"first({c}) else self" for c in CLASSES] + [f"decay({r})" for r in (0.3, 0.5, 0.7, 0.9)]

    def table() -> str:
        chosen = rng.sample(WORDS, 4)
        return "{" + ", ".join(f'"{w}": {rng.uniform(0.1, 2):.2f}' for w in chosen) + "}"

    def make() -> str:
        kind = rng.randrange(4)
        if kind == 0:
            return rng.choice(simple)
        if kind == 1:
            a, b, c = rng.sample(simple, 3)
            return f"{rng.randint(1, 9)}*({a}) + {rng.randint(1, 9)}*({b}) + {rng.randint(1, 9)}*({c})"
        if kind == 2:
            cls = rng.choice(CLASSES)
            return f"nearest(key.{cls} and key.pos >= query.pos - {rng.randint(2, 30)}) else {rng.choice(simple)}"
        return (f"softmax({rng.uniform(1, 6):.2f}*bos + {rng.uniform(0, 2):.2f}*key.{rng.choice(CLASSES)}"
                f" - {rng.uniform(0, 1):.2f}*log_dist + {rng.uniform(0, 3):.2f}*prev(1)"
                f" + key.word{table()} + query.word{table()}*self)")

    seen: dict[str, str] = {}
    while len(seen) < count:
        text = make()
        seen.setdefault(dsl.Program.of(text).id, text)
    return list(seen.values())


# The term shapes of a fitted score program (`headcode.synth.scoreform`), {t} a word table.
_FITTED_TERMS = (
    "{w}*(key.pos <= 4)", "{w}*(key.pos == 1)", "{w}*(key.pos == 2)", "{w}*(key.punct and same_sent)",
    "{w}*(key.word_initial and same_word)", "{w}*(prev(1) and query.cap)", "{w}*(prev(1) and query.closed)",
    "{w}*(prev(1) and query.punct)", "{w}*(query.closed and self)", "{w}*(query.punct and self)",
    "{w}*(query.sent_end and self)", "{w}*(query.word_initial and self)", "{w}*bos", "bos*query.word{t}",
    "{w}*induction", "key.punct*query.word{t}", "key.word{t}", "log_dist*query.word{t}", "{w}*log_dist",
    "prev(1)*query.word{t}", "prev(2)*query.word{t}", "{w}*same_sent", "same_sent*key.word{t}",
    "{w}*same_token", "{w}*same_word", "{w}*self", "self*query.word{t}", "{w}*window(16)", "{w}*window(4)",
) + tuple(f"{{w}}*key.{c}" for c in CLASSES + ("word_initial",)) + tuple(f"{{w}}*prev({k})" for k in range(1, 7))


def fitted_programs(count: int = 68, seed: int = 0) -> list[str]:
    """`count` score programs shaped like fitted ones: `mix3` of softmaxes over every
    term shape above, with word tables of 30-80 entries (most words absent from TEXT)."""
    rng = random.Random(seed)
    vocabulary = sorted({w.lower() for w in TEXT}) + [f"w{k}" for k in range(300)]

    def table() -> str:
        chosen = rng.sample(vocabulary, rng.randint(30, 80))
        return "{" + ", ".join(f"{json.dumps(w)}: {rng.uniform(-2, 2):.2f}" for w in chosen) + "}"

    def softmax() -> str:
        terms = [shape.format(w=f"{rng.uniform(-3, 3):.2f}", t=table()) for shape in _FITTED_TERMS]
        return "softmax(" + " + ".join(terms) + ")"

    return [" + ".join(f"{w}*{softmax()}" for w in (0.5, 0.3, 0.2)) for _ in range(count)]


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# Run in a fresh interpreter: time from before the import to the first result.
_FRESH = """
import json, time
start = time.perf_counter()
from headcode import dsl
from headcode.compiler import evaluate_many
from headcode.compiler.benchmark import programs, sequence
patterns = [dsl.Program.of(p) for p in programs()]
evaluate_many(patterns, sequence())
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _fresh_process(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run([sys.executable, "-c", _FRESH], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def run(python_sample: int = 30) -> dict[str, float]:
    from headcode.compiler import ProgramBatch, reference_evaluate
    from headcode.compiler.loops import loop_evaluate

    table = sequence()
    patterns = [dsl.Program.of(p) for p in programs()]
    start = time.perf_counter()
    batch = ProgramBatch(patterns)
    first_build_s = time.perf_counter() - start
    batch.evaluate(table)  # compile or load the kernels before timing
    kernel_s = _best(lambda: batch.evaluate(table), 10)
    build_s = _best(lambda: ProgramBatch(patterns), 3)
    reference_s = _best(lambda: [reference_evaluate(p, table) for p in patterns], 1)
    sample = patterns[:: max(1, len(patterns) // python_sample)][:python_sample]
    python_s = _best(lambda: [loop_evaluate(p, table) for p in sample], 1)
    per_program = kernel_s / len(patterns)
    fitted = [dsl.Program.of(p) for p in fitted_programs()]
    fitted_batch = ProgramBatch(fitted)
    fitted_batch.evaluate(table)
    fitted_s = _best(lambda: fitted_batch.evaluate(table), 10)
    fitted_reference_s = _best(lambda: [reference_evaluate(p, table) for p in fitted], 1)
    with tempfile.TemporaryDirectory(prefix="headcode-numba-") as cache:
        cold = _fresh_process(cache)
        warm = _fresh_process(cache)
    return {
        "programs": len(patterns),
        "sequence_length": len(table),
        "ms_per_300_programs": round(kernel_s * 1000 * 300 / len(patterns), 3),
        "ms_first_build_300_programs": round(first_build_s * 1000 * 300 / len(patterns), 3),
        "ms_batch_build_300_programs": round(build_s * 1000 * 300 / len(patterns), 3),
        "speedup_vs_reference": round(reference_s / kernel_s, 1),
        "speedup_vs_python": round(python_s / len(sample) / per_program, 1),
        "python_sample_programs": len(sample),
        "cold_compile_s": round(cold, 2),
        "warm_load_s": round(warm, 2),
        "ms_per_fitted_program": round(fitted_s * 1000 / len(fitted), 4),
        "fitted_speedup_vs_reference": round(fitted_reference_s / fitted_s, 1),
    }
