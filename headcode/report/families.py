"""The colour of each family of heads (headcode.dsl.describe.Family), one place for
the grid, its legend, the figures and the head pages.

Tableau's ten-colour palette, one hue per family, `mixed` the neutral grey; the
order is the legend's. A family this table does not know (a newer headcode's) is a
KeyError at import of the report, not a silently grey cell: every Family is listed.
"""

from __future__ import annotations

from types import MappingProxyType

from headcode.dsl.describe import Family

COLOURS = MappingProxyType({
    Family.SINK: "#4e79a7",
    Family.PREVIOUS: "#f28e2b",
    Family.SELF: "#b07aa1",
    Family.PUNCTUATION: "#e15759",
    Family.INDUCTION: "#76b7b2",
    Family.SAME_TOKEN: "#59a14f",
    Family.POSITIONAL: "#edc948",
    Family.CONTENT: "#9c755f",
    Family.MIXED: "#bab0ac",
})

missing = [f for f in Family if f not in COLOURS]
if missing:  # a new family needs a colour before any report is drawn
    raise KeyError(f"no report colour for famil{'y' if len(missing) == 1 else 'ies'} "
                   f"{', '.join(f.value for f in missing)}")
del missing


def slug(family: Family) -> str:
    """A name usable as a CSS class and in file names: `punctuation/delimiter` -> `punctuation-delimiter`."""
    return "".join(c if c.isalnum() else "-" for c in family.value)


# The test IoU range the shade spans: most heads of a library lie between these, so
# the shade tells them apart (below LOW: the palest tint; above HIGH: the full colour).
LOW, HIGH = 0.2, 0.9


def shade(colour: str, iou: float | None) -> str:
    """`colour` blended towards white as the test IoU falls: HIGH and above is the full
    colour, LOW and below a pale tint (15%), so well explained heads stand out. No IoU: the tint."""
    t = 0.0 if iou is None else min(max((iou - LOW) / (HIGH - LOW), 0.0), 1.0)
    weight = 0.15 + 0.85 * t
    rgb = [int(colour[k:k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * weight):02x}" for c in rgb)


def is_light(colour: str) -> bool:
    """Whether dark text reads better than white on `colour` (relative luminance)."""
    r, g, b = (int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.55
