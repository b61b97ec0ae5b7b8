"""Kernel benchmark: prints JSON (see headcode/compiler/benchmark.py for each figure).

    .venv/bin/python benchmarks/kernels.py      (or: headcode bench kernels --json)

Targets (issue 2): speedup_vs_python >= 100, speedup_vs_reference >= 5,
ms_per_300_programs <= 20, warm_load_s <= 2, cold_compile_s <= 60.

ms_per_fitted_program times score-form programs shaped like fitted ones (a mixture
of three softmaxes of ~43 terms with word tables). Splitting score terms into query
and key vectors with one fused pass per relation (headcode/compiler/terms.py) took
it from 1.10 to 0.083 ms on the 2-core development machine (2 threads).
"""

import json

from headcode.compiler.benchmark import run

if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
