"""A library's recorded test IoU by layer: each level's programs and the greedy mixture.

    .venv/bin/python benchmarks/layers.py LIB [--markdown]

Prints JSON (or, with --markdown, the by-layer table of docs/models.md: cells
`full/short/greedy`, the mean test IoU of the layer's heads). The figures are the
library's own (`headcode explain` measured them on its test split); nothing is rerun.
"""

from __future__ import annotations

import argparse
import json
from statistics import fmean

from headcode.library import Level, Library


def by_layer(lib: Library) -> dict[str, list[float | None]]:
    """Per level (and `greedy_mixture`), the mean test IoU of each layer's heads."""
    layers = range(lib.model.num_layers)

    def mean(values):
        values = [v for v in values if v is not None]
        return fmean(values) if values else None

    out = {level.value: [mean(lib[k][level].test.get("iou") for k in lib if k[0] == layer and level in lib[k].levels)
                         for layer in layers] for level in lib.levels}
    out["greedy_mixture"] = [mean(lib[k].baselines.get("greedy_mixture") for k in lib if k[0] == layer)
                             for layer in layers]
    return out


def markdown(table: dict[str, list[float | None]]) -> str:
    columns = [c for c in (Level.FULL.value, Level.SHORT.value, "greedy_mixture") if c in table]
    cells = ["/".join("–" if v is None else f"{v:.2f}".lstrip("0") for v in values)
             for values in zip(*(table[c] for c in columns))]
    return "\n".join([f"({'/'.join(columns)})", "| layer | " + " | ".join(map(str, range(len(cells)))) + " |",
                      "|---|" + "---|" * len(cells), "| | " + " | ".join(cells) + " |"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lib")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    table = by_layer(Library.load(args.lib))
    print(markdown(table) if args.markdown else json.dumps(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
