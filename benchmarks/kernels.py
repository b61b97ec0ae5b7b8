"""Kernel benchmark: prints JSON (see headcode/compiler/benchmark.py for each figure).

    .venv/bin/python benchmarks/kernels.py      (or: headcode bench kernels --json)

Targets (issue 2): speedup_vs_python >= 100, speedup_vs_reference >= 5,
ms_per_300_programs <= 20, warm_load_s <= 2, cold_compile_s <= 60.
"""

import json

from headcode.compiler.benchmark import run

if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
