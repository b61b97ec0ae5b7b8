"""Behavioural deduplication: programs that compute the same matrices are merged.

Two programs coincide when their matrices agree within `atol` (absolute, 1e-9) on
every probe table. Each group is merged into its member with the shortest
canonical text (ties: smallest id); the heads move to it, and the library's
`merged` record gains `old_id -> new_id` (earlier records pointing at a merged
program are redirected). Probes can only show that programs differ, never that
they are equal everywhere: choose varied tables.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from headcode.library.entries import HeadEntry
from headcode.library.errors import LibraryError


def coinciding(programs, probe_tables, evaluate=None, atol: float = 1e-9) -> dict:
    """{program: the program it merges into} for the programs that coincide with a
    shorter one (by canonical text, ties by id) within `atol` on every probe table.

    `evaluate(programs, table) -> array [k, n, n]` computes the matrices of k
    programs on one token table; by default `headcode.compiler.evaluate_many`.
    """
    tables = list(probe_tables)
    if not tables:
        raise LibraryError("dedup needs at least one probe table")
    if evaluate is None:
        from headcode.compiler import evaluate_many as evaluate
    ordered = sorted(set(programs), key=lambda p: (p.chars, p.id))
    if len(ordered) < 2:
        return {}
    blocks = []
    for t in tables:
        m = np.asarray(evaluate(ordered, t), dtype=np.float64)
        if m.ndim != 3 or m.shape[0] != len(ordered):
            raise LibraryError(f"dedup: evaluate returned shape {m.shape} for {len(ordered)} programs")
        blocks.append(m.reshape(len(ordered), -1))
    flat = np.concatenate(blocks, axis=1)
    # A random projection screens candidates: elementwise agreement within atol
    # bounds the projections' difference by atol * sum(r).
    r = np.random.default_rng(0).random(flat.shape[1])
    proj = flat @ r
    slack = atol * r.sum() * (1 + 1e-9) + 1e-12 * max(1.0, float(np.abs(proj).max()))
    reps: list[int] = []
    mapping = {}
    for k in range(len(ordered)):
        target = None
        if reps:
            rep = np.asarray(reps)
            near = rep[np.abs(proj[rep] - proj[k]) <= slack]
            for j in near:
                if np.all(np.abs(flat[j] - flat[k]) <= atol):
                    target = int(j)
                    break
        if target is None:
            reps.append(k)
        else:
            mapping[ordered[k]] = ordered[target]
    return mapping


def dedup(library, probe_tables, evaluate=None, atol: float = 1e-9):
    """A copy of `library` with behaviourally equal programs merged (`coinciding`)."""
    mapping = {old.id: new.id for old, new in coinciding(library.programs.values(), probe_tables, evaluate,
                                                           atol).items()}
    if not mapping:
        return library
    heads = [HeadEntry(h.layer, h.head, {level: dataclasses.replace(e, program=mapping.get(e.program, e.program))
                                         for level, e in h.levels.items()}, h.baselines)
             for h in library.values()]
    merged = {old: mapping.get(new, new) for old, new in library.merged.items()}
    merged.update(mapping)
    return library.replace(heads=heads, merged=merged)
