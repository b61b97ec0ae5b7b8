"""Choosing each head's short program: a description-length rule over the library.

A library is read as a few ideas (shapes, `headcode.dsl.shape`) and, per head, the
numbers that fill one. So a program's cost is counted twice, as a description
length would: each atom a head reads costs ATOM_COST of validation IoU (a longer
program must earn its length on validation text), and the shapes the library
holds are limited to MAX_SHAPES (a reader learns each shape once; 60 shapes for
a model's 270 heads keep a library readable as a few dozen ideas, near the paper's
library, whose 144 programs are one idea each and of which 8-14 explain every head).

`choose` applies both: starting from the shape of `bos` (which fits every head),
it adds the shape that most raises the summed utility (validation IoU minus
ATOM_COST per atom, each head taking its best candidate among the chosen shapes)
until the budget is reached or no shape gains MIN_GAIN; each head then gets its
best candidate of a chosen shape (ties: the smaller, then the candidate listed
first).

Why these constants: on development text, an atom beyond the first few raises
test IoU by about 0.001-0.003, so ATOM_COST = 0.001 keeps atoms that earn more
than they cost to read. The shape budget costs little: on development paragraphs
the rule stops by itself at 56 shapes (no new shape adds MIN_GAIN), on windows it
binds at 60, and with no budget at all the mean test IoU rose by less than 0.01.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from headcode.dsl import Program
from headcode.dsl.shape import shape_id
from headcode.heads import Head
from headcode.metrics import Scores

ATOM_COST = 0.001  # validation IoU per atom a program reads
MAX_SHAPES = 60  # distinct shapes of a library's short programs, at most
MIN_GAIN = 1e-4  # summed utility a new shape must add

Key = TypeVar("Key", bound=Hashable)


def utility(program: Program, scores: Scores) -> float:
    return scores.iou - ATOM_COST * program.size


def choose(candidates: Mapping[Head, Mapping[Key, Program]], scores: Mapping[Head, Mapping[Key, Scores]],
           max_shapes: int = MAX_SHAPES) -> dict[Head, Key]:
    """Each head's chosen candidate (see the module docstring). Every head must have
    a candidate of the shape of `bos`."""
    value = {h: {k: utility(p, scores[h][k]) for k, p in options.items()} for h, options in candidates.items()}
    # shape -> head -> that head's best candidate of the shape
    by_shape: dict[str, dict[Head, Key]] = {}
    for h, options in candidates.items():
        for k, p in options.items():
            best = by_shape.setdefault(shape_id(p), {})
            if h not in best or _better(value[h], candidates[h], k, best[h]):
                best[h] = k
    start = shape_id(Program.of("bos"))
    missing = [h for h in candidates if h not in by_shape.get(start, {})]
    if missing:
        raise ValueError(f"head {missing[0]} has no candidate of the shape of bos")
    chosen = {start}
    current = {h: value[h][k] for h, k in by_shape[start].items()}
    while len(chosen) < max_shapes:
        gains = {s: sum(max(0.0, value[h][k] - current[h]) for h, k in heads.items())
                 for s, heads in by_shape.items() if s not in chosen}
        if not gains:
            break
        best = max(gains, key=lambda s: (gains[s], s))
        if gains[best] < MIN_GAIN:
            break
        chosen.add(best)
        for h, k in by_shape[best].items():
            current[h] = max(current[h], value[h][k])
    out = {}
    for h, options in candidates.items():
        allowed = [k for s in chosen if h in by_shape[s] for k in [by_shape[s][h]]]
        pick = allowed[0]
        for k in allowed[1:]:
            if _better(value[h], options, k, pick):
                pick = k
        out[h] = pick
    return out


def _better(value: Mapping, options: Mapping, a, b) -> bool:
    """Whether candidate a beats b: higher utility, then smaller, then listed first."""
    order = list(options)
    return (value[a], -options[a].size, -order.index(a)) > (value[b], -options[b].size, -order.index(b))
