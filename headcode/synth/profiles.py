"""Head profiles: what each captured head mostly attends to, in a few numbers.

For every (layer, head), over query rows 1..n-1 of every sequence pooled (row 0 of a
causal model can only attend to itself, so it says nothing about the head):
  entropy          mean row entropy, in bits;
  first_mass       mean attention on position 0 (the usual "sink");
  prev_mass        on position i-1;
  self_mass        on position i;
  same_token_mass  on earlier positions holding the query's token (the DSL's
                   `same_token`), over rows that have one;
  induction_mass   on keys right after an occurrence of the query's token (the
                   DSL's `induction`: key.prev_tok == query.tok), over rows that have one;
  last_punct_mass  on the latest punctuation token at or before the query (the DSL's
                   `last(punct)`), over rows that have one.
A mass over rows that never occur (no repeated token in any sequence) is None.

The grid (`grid`) shows per head the strongest of these patterns and its mass, so a
person can scan 30 x 9 heads in one screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from headcode.dsl.features import Feature, TokenClass

STATS = ("entropy", "first_mass", "prev_mass", "self_mass", "same_token_mass", "induction_mass", "last_punct_mass")
# Grid letters for the patterns, in the order ties are broken.
CODES = {"first_mass": "F", "prev_mass": "P", "self_mass": "S", "same_token_mass": "T",
         "induction_mass": "I", "last_punct_mass": ","}
DIFFUSE = 0.3  # below this best mass a head is shown as diffuse ("~")


@dataclass(frozen=True)
class HeadProfile:
    layer: int
    head: int
    entropy: float | None
    first_mass: float | None
    prev_mass: float | None
    self_mass: float | None
    same_token_mass: float | None
    induction_mass: float | None
    last_punct_mass: float | None

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def dominant(self) -> tuple[str, float]:
        """(grid letter, mass) of the strongest pattern; "~" when none reaches DIFFUSE."""
        masses = [(getattr(self, stat), code) for stat, code in CODES.items() if getattr(self, stat) is not None]
        mass, code = max(masses, key=lambda mc: mc[0], default=(0.0, "~"))
        return (code if mass >= DIFFUSE else "~"), mass


def sequence_sums(attention: np.ndarray, table) -> dict[str, tuple[np.ndarray, int]]:
    """Per stat: (sum over qualifying rows, as [layers, heads]; number of such rows)."""
    a = np.asarray(attention, dtype=np.float32)
    n = a.shape[-1]
    rows = np.arange(1, n)
    tok = table.column(Feature.TOK)
    prev_tok = table.column(Feature.PREV_TOK)
    punct = table.column(TokenClass.PUNCT).astype(bool)
    q, k = np.tril_indices(n)  # causal (query, key) pairs; rows 1.. only below
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(a > 0, a * np.log2(a), 0.0)
    out = {
        "entropy": (-plogp[..., 1:, :].sum(axis=(-1, -2)), n - 1),
        "first_mass": (a[..., 1:, 0].sum(-1), n - 1),
        "prev_mass": (a[..., rows, rows - 1].sum(-1), n - 1),
        "self_mass": (a[..., rows, rows].sum(-1), n - 1),
    }
    for stat, keep in (
        ("same_token_mass", (tok[k] == tok[q]) & (k < q)),
        ("induction_mass", prev_tok[k] == tok[q]),
    ):
        mask = np.zeros((n, n), dtype=np.float32)
        mask[q[keep], k[keep]] = 1.0
        mask[0] = 0.0
        has = mask.any(axis=1)
        out[stat] = (np.einsum("lhij,ij->lh", a, mask), int(has.sum()))
    latest = np.maximum.accumulate(np.where(punct, np.arange(n), -1))
    where = rows[latest[rows] >= 0]
    out["last_punct_mass"] = (a[..., where, latest[where]].sum(-1), len(where))
    return out


def profiles(capture, split: str | None = None, progress: bool = False) -> list[HeadProfile]:
    """One profile per head of a capture (synth.capture.Capture), from one split or all."""
    from tqdm import tqdm

    totals = {stat: np.zeros((capture.layers, capture.heads)) for stat in STATS}
    counts = dict.fromkeys(STATS, 0)
    for i in tqdm(capture.indices(split), unit="seq", desc="profiles", disable=not progress):
        for stat, (total, count) in sequence_sums(capture.attention(i), capture.table(i)).items():
            totals[stat] += total
            counts[stat] += count
    means = {stat: totals[stat] / counts[stat] if counts[stat] else None for stat in STATS}
    return [
        HeadProfile(layer, head, **{s: None if means[s] is None else float(means[s][layer, head]) for s in STATS})
        for layer in range(capture.layers)
        for head in range(capture.heads)
    ]


def grid(profiles: list[HeadProfile]) -> str:
    """A layer x head table: each cell is the head's strongest pattern and its mass in %."""
    layers = 1 + max(p.layer for p in profiles)
    heads = 1 + max(p.head for p in profiles)
    cells = {(p.layer, p.head): p.dominant() for p in profiles}
    lines = ["layer " + "".join(f"{'h' + str(h):>5}" for h in range(heads))]
    for layer in range(layers):
        row = "".join(f"{code:>2}{min(99, round(mass * 100)):>3}" for code, mass in (cells[layer, h] for h in range(heads)))
        lines.append(f"{layer:>5} {row}")
    lines.append(
        "F first token, P previous, S self, T earlier same token, I induction, , latest punctuation; "
        f"number = mean attention on it in %; ~ none reaches {round(DIFFUSE * 100)}%"
    )
    return "\n".join(lines)
