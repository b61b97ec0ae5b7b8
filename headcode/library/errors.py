"""The library's errors: every refusal is a one-line `UserError` naming the file."""

from __future__ import annotations

from headcode.errors import UserError


class LibraryError(UserError):
    """A library that cannot be loaded, saved, merged or attached, in one line."""


class MergeConflict(LibraryError):
    """Two libraries explain the same head differently. `.conflicts` lists
    (layer, head, what differs) for every such head."""

    def __init__(self, conflicts: list[tuple[int, int, str]]):
        self.conflicts = conflicts
        shown = ", ".join(f"L{layer}.H{head} ({what})" for layer, head, what in conflicts[:5])
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        super().__init__(f"cannot merge: {len(conflicts)} head(s) explained differently: {shown}{more}")
