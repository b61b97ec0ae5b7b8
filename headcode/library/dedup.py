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

    Two passes over the tables, each holding one table's matrices at a time (all
    of them at once were 2 GB for 250 short programs on 60 windows of 128 tokens):
    a random projection of every program's matrices screens the pairs that might
    coincide (elementwise agreement within atol bounds the projections' difference
    by atol * sum(r)), then only the programs of those pairs run again, and a pair
    coincides when it agrees within atol on every table.
    """
    tables = list(probe_tables)
    if not tables:
        raise LibraryError("dedup needs at least one probe table")
    if evaluate is None:
        from headcode.compiler import evaluate_many as evaluate
    ordered = sorted(set(programs), key=lambda p: (p.chars, p.id))
    if len(ordered) < 2:
        return {}
    rng = np.random.default_rng(0)
    proj, r_sum = np.zeros(len(ordered)), 0.0
    for t in tables:
        r = rng.random(len(t) ** 2)
        proj += _matrices(evaluate, ordered, t) @ r
        r_sum += float(r.sum())
    slack = atol * r_sum * (1 + 1e-9) + 1e-12 * max(1.0, float(np.abs(proj).max()))
    # (earlier, later) pairs that the projection cannot tell apart.
    pairs = [(int(j), k) for k in range(len(ordered)) for j in np.flatnonzero(np.abs(proj[:k] - proj[k]) <= slack)]
    agree = dict.fromkeys(pairs, True)
    if pairs:
        involved = sorted({i for pair in pairs for i in pair})
        row = {i: n for n, i in enumerate(involved)}
        for t in tables:
            m = _matrices(evaluate, [ordered[i] for i in involved], t)
            for j, k in pairs:
                if agree[j, k] and not np.all(np.abs(m[row[j]] - m[row[k]]) <= atol):
                    agree[j, k] = False
    reps: list[int] = []
    mapping = {}
    for k in range(len(ordered)):
        target = next((j for j in reps if agree.get((j, k), False)), None)
        if target is None:
            reps.append(k)
        else:
            mapping[ordered[k]] = ordered[target]
    return mapping


def _matrices(evaluate, programs, table) -> np.ndarray:
    """[programs, n * n] float64: `evaluate`'s matrices of the programs on one table, checked."""
    m = np.asarray(evaluate(programs, table), dtype=np.float64)
    if m.shape != (len(programs), len(table), len(table)):
        raise LibraryError(f"dedup: evaluate returned shape {m.shape} for {len(programs)} programs")
    return m.reshape(len(programs), -1)


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
