"""Two models' libraries side by side: what the same language says about both.

    .venv/bin/python benchmarks/models.py LIB_A LIB_B [--bins 6] [--markdown]

Prints JSON (or, with --markdown, the tables of docs/models.md): per level of
detail, the programs (by id: the same canonical text) and the shapes (the program
with its numbers as `?`) that explain heads of both models, and the families of the
heads' programs by depth. Models of different depth are compared by relative depth:
layer l of L layers falls in bin floor(bins * l / L), so bin 0 is the first sixth of
either model. Families are `headcode.dsl.describe.family` of each head's program.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from headcode.dsl.describe import Family, family
from headcode.dsl.shape import shape_id, shape_text
from headcode.library import Library


def compare(a: Library, b: Library, bins: int) -> dict:
    out = {"models": [a.model.name, b.model.name], "levels": {}}
    for level in sorted(set(a.levels) & set(b.levels), key=lambda lv: lv.value):
        programs = [{key: lib.program_of(*key, level) for key in lib if level in lib[key].levels} for lib in (a, b)]
        ids = [{p.id: p for p in heads.values()} for heads in programs]
        shapes = [Counter(shape_id(p) for p in heads.values()) for heads in programs]
        text = {shape_id(p): shape_text(p) for heads in programs for p in heads.values()}
        shared_ids = sorted(set(ids[0]) & set(ids[1]))
        shared_shapes = sorted(set(shapes[0]) & set(shapes[1]), key=lambda s: -(shapes[0][s] + shapes[1][s]))
        depth = []
        for lib, heads in zip((a, b), programs):
            rows = [Counter() for _ in range(bins)]
            for (layer, _), p in heads.items():
                rows[bins * layer // lib.model.num_layers][family(p).value] += 1
            depth.append([dict(r) for r in rows])
        out["levels"][level.value] = {
            "heads": [len(h) for h in programs],
            "distinct_programs": [len(i) for i in ids],
            "shared_programs": [{"program": ids[0][k].text, "heads": [sum(p.id == k for p in h.values())
                                                                      for h in programs]} for k in shared_ids],
            "distinct_shapes": [len(s) for s in shapes],
            "shared_shapes": [{"shape": text[s], "heads": [shapes[0][s], shapes[1][s]]} for s in shared_shapes],
            "families_by_depth": depth,
        }
    return out


def markdown(report: dict, bins: int) -> str:
    a, b = report["models"]
    lines = []
    for level, r in report["levels"].items():
        lines += [f"### {level} level", "",
                  f"{a}: {r['heads'][0]} heads, {r['distinct_programs'][0]} programs, {r['distinct_shapes'][0]} shapes; "
                  f"{b}: {r['heads'][1]} heads, {r['distinct_programs'][1]} programs, {r['distinct_shapes'][1]} shapes; "
                  f"shared: {len(r['shared_programs'])} programs, {len(r['shared_shapes'])} shapes.", ""]
        if r["shared_shapes"]:
            lines += [f"| shared shape | heads of {a} | heads of {b} |", "|---|---|---|"]
            lines += [f"| `{_cut(s['shape'])}` | {s['heads'][0]} | {s['heads'][1]} |" for s in r["shared_shapes"][:12]]
            lines.append("")
        names = [f.value for f in Family]
        used = [n for n in names if any(n in row for side in r["families_by_depth"] for row in side)]
        lines += [f"| depth | {' | '.join(used)} |", "|---|" + "---|" * len(used)]
        for k in range(bins):
            cells = [f"{r['families_by_depth'][0][k].get(n, 0)} / {r['families_by_depth'][1][k].get(n, 0)}"
                     for n in used]
            lines.append(f"| {k}/{bins}-{k + 1}/{bins} | {' | '.join(cells)} |")
        lines += ["", f"(cells: heads of {a} / heads of {b} whose {level} program is of that family)", ""]
    return "\n".join(lines)


def _cut(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--bins", type=int, default=6)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    report = compare(Library.load(args.a), Library.load(args.b), args.bins)
    print(markdown(report, args.bins) if args.markdown else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
