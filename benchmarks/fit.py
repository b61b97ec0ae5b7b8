"""Time `headcode.synth.fit` on 48 sequences of 128 tokens whose attention a known
softmax made: a three-hole softmax, an open table of 8 words, a two-share mixture.
Prints each fit's time and the filled program. Run alone (the fit is multi-threaded).
"""
import time
import numpy as np
from headcode import dsl, testing
from headcode.compiler import evaluate_many
from headcode.dsl.tokens import TokenTable
from headcode.synth.fit import fit
rng = np.random.default_rng(0)
words = [w for w in testing.WORDS if w != "\n"]
tables = [TokenTable.from_words(list(rng.choice(words, size=128))) for _ in range(48)]
P = dsl.Program.of("softmax(3*bos + 2*key.punct - 0.5*log_dist + key.word{cat: 1.5, dog: -1})")
targets = [evaluate_many([P], t)[0] for t in tables]
fit(dsl.Program.of("?*prev(1) + ?*bos"), tables, targets)  # warm up
for sk in ["softmax(?*bos + ?*key.punct + ?*log_dist)", "softmax(?*bos + ?*key.punct + ?*log_dist + key.word{?8})", "?*prev(1) + ?*bos"]:
    t0 = time.time(); r = fit(dsl.Program.of(sk), tables, targets); print(f"{time.time()-t0:.2f}s {r.program.text}")
