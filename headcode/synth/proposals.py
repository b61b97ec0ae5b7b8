"""LLM candidates for the explain pipeline: a compact summary of each head, then
`synth.llm.propose` (replies only ever parsed as DSL)."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from headcode.dsl import ir
from headcode.heads import Head
from headcode.synth.data import Split
from headcode.synth.profiles import sequence_sums

SUMMARY_SEQUENCES = 20  # sequences read to summarise a head
TOP_PAIRS = 20
GIVE_UP_AFTER = 3  # heads in a row that got nothing but a server error


def summaries(split: Split, heads: Sequence[Head]):
    """A `HeadSummary` per head: its profile and its strongest (query, key) token pairs."""
    from headcode.synth.prompt import HeadSummary

    count = min(len(split), SUMMARY_SEQUENCES)
    totals: dict[str, np.ndarray] = {}
    rows: dict[str, int] = defaultdict(int)
    pairs: dict[Head, dict[tuple[str, str], list[float]]] = {h: defaultdict(list) for h in heads}
    for k in range(count):
        attention, table = split.attention[k], split.tables[k]
        for stat, (total, n) in sequence_sums(attention, table).items():
            totals[stat] = totals.get(stat, 0) + total
            rows[stat] += n
        surfaces = [s.strip() or repr(s) for s in table.surfaces]
        for l, h in heads:
            a = attention[l, h]
            for i in range(1, len(table)):
                j = int(np.argmax(a[i, : i + 1]))
                pairs[l, h][surfaces[i], surfaces[j]].append(float(a[i, j]))
    out = {}
    for l, h in heads:
        profile = {s: float(totals[s][l, h] / rows[s]) for s in totals if rows[s]}
        ranked = sorted(pairs[l, h].items(), key=lambda kv: -sum(kv[1]))[:TOP_PAIRS]
        top = tuple((q, key, round(float(np.mean(v)), 3)) for (q, key), v in ranked)
        out[l, h] = HeadSummary(layer=l, head=h, profile=profile, top_pairs=top)
    return out


def llm_candidates(split: Split, heads: Sequence[Head], config, notes: list[str],
                   progress: bool) -> dict[Head, list[ir.Pattern]]:
    """Programs proposed by the LLM for each head; server trouble becomes one note."""
    from tqdm import tqdm

    from headcode.synth.llm import propose

    out: dict[Head, list[ir.Pattern]] = {}
    errors = in_a_row = 0
    for head, summary in tqdm(summaries(split, heads).items(), desc="llm proposals", unit="head", file=sys.stderr,
                              disable=not progress):
        result = propose(summary, config)
        out[head] = list(result.programs)
        failed = result.error is not None and not result.programs
        in_a_row = in_a_row + 1 if failed else 0
        if result.error:
            errors += 1
            if errors == 1:
                notes.append(f"LLM proposer: {result.error}")
        if failed and ("reach" in result.error or in_a_row >= GIVE_UP_AFTER):
            # A dead or stalled server would otherwise cost a timeout per head (hours for a model).
            why = "unreachable" if "reach" in result.error else f"failed {in_a_row} heads in a row"
            notes.append(f"LLM proposer: server {why}; skipped the remaining heads")
            break
    return out
