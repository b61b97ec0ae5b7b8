"""`headcode bench kernels`: the compiler benchmark from the command line."""

from __future__ import annotations

import json

BENCHMARKS = {"kernels": "the Numba kernels against the NumPy reference and plain Python loops"}


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from headcode.compiler.benchmark import run

    figures = run()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(map(len, figures))
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0
