"""A head of a model, `L3.H7`: one type, one way to read it, one bounds check.

Imports nothing else of headcode; the library, synthesis, replacement and the
command line all name heads with it.
"""

from __future__ import annotations

import numbers
import re
from typing import NamedTuple

from headcode.errors import UserError

_NAME = re.compile(r"L(\d+)\.H(\d+)")


class Head(NamedTuple):
    """(layer, head), both from 0; a plain tuple to everything that indexes with it."""

    layer: int
    head: int

    def __str__(self) -> str:
        return f"L{self.layer}.H{self.head}"


def as_head(value) -> Head:
    """`value` as a Head: a pair of whole numbers (Python or NumPy integers, not floats)."""
    try:
        layer, head = value
    except (TypeError, ValueError):
        raise UserError(f"a head is a pair (layer, head), not {value!r:.60}") from None
    if any(isinstance(x, bool) or not isinstance(x, numbers.Integral) for x in (layer, head)):
        raise UserError(f"a head is two whole numbers (layer, head), not {value!r:.60}")
    return Head(int(layer), int(head))


def outside(head: tuple[int, int], layers: int, heads: int, model: str | None = None) -> str | None:
    """Why `head` is not a head of a model of `layers` x `heads` (named `model`), or
    None if it is one."""
    layer, h = as_head(head)
    if not (0 <= layer < layers and 0 <= h < heads):
        has = f"{model} has " if model else ""
        return f"head L{layer}.H{h} is outside the model ({has}{layers} layers of {heads} heads)"
    return None


def parse_heads(text: str, layers: int, heads: int, what: str = "--heads") -> tuple[Head, ...]:
    """`L0.H1,L3.H2` as sorted heads of a model of `layers` x `heads`."""
    if not text or not text.strip():
        raise UserError(f"{what}: give heads like L0.H1,L3.H2 (an empty list names no head)")
    out = set()
    for part in text.split(","):
        match = _NAME.fullmatch(part.strip())
        if not match:
            raise UserError(f"{what}: {part.strip()[:40]!r} is not a head like L3.H7")
        head = Head(int(match[1]), int(match[2]))
        if (why := outside(head, layers, heads)) is not None:
            raise UserError(f"{what}: {why}")
        out.add(head)
    return tuple(sorted(out))
