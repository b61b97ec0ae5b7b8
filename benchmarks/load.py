"""Load benchmark: the bundled library read with every check, and where the time goes.

Prints JSON: the median over `--repeats` of loading `headcode.library.bundled(NAME)`
(files read, programs parsed and checked, canonical forms compared, manifest checked),
of parsing its programs.hc alone (`dsl.parse.parse_file`, syntax only) and of parsing
and checking it into programs (`dsl.parse_programs`). Run it alone: it is one core's work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from headcode import dsl
from headcode.dsl.parse import parse_file
from headcode.library import bundled
from headcode.library import format as fmt
from headcode.library.bundled import path
from headcode.library.storage import read_dir


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text = read_dir(path(args.name), fmt.FILES)[fmt.PROGRAMS].decode("utf-8")
    print(json.dumps({
        "library": args.name,
        "programs_chars": len(text),
        "load_s": median_time(lambda: bundled(args.name), args.repeats),
        "parse_file_s": median_time(lambda: parse_file(text), args.repeats),
        "parse_programs_s": median_time(lambda: dsl.parse_programs(text), args.repeats),
    }, indent=1))


if __name__ == "__main__":
    main()
