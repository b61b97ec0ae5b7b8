"""Diagnostics with positions, and the one error type the DSL raises.

Every problem the parser or checker finds becomes a `Diagnostic` (line, column,
message). A `DslError` carries all of them, plus the source text so it can render
each as `FILE:LINE:COL: error: MESSAGE`, the offending line and a caret.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    """Where a piece of text starts and ends (1-based lines and columns)."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Diagnostic:
    line: int
    column: int
    message: str


# Messages quote the input (an unknown name, a word); input has no length limit, so
# what is shown of it has one: a message, and the source line around the caret.
MAX_MESSAGE = 300
LINE_WINDOW = 100


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 30] + f"... ({len(text) - limit + 30:,} characters more)"


class DslError(Exception):
    """One or more problems in program text. Never raised without a position."""

    def __init__(self, diagnostics: list[Diagnostic], source: str = "", filename: str = "<program>"):
        if not diagnostics:
            raise ValueError("a DslError needs at least one diagnostic")
        diagnostics = [d if len(d.message) <= MAX_MESSAGE else Diagnostic(d.line, d.column, _cut(d.message, MAX_MESSAGE))
                       for d in diagnostics]
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.line, d.column))
        self.source = source
        self.filename = filename
        first = self.diagnostics[0]
        super().__init__(f"{filename}:{first.line}:{first.column}: {first.message}")

    def with_filename(self, filename: str) -> DslError:
        return DslError(self.diagnostics, self.source, filename)

    def render(self) -> str:
        """Every diagnostic as `FILE:LINE:COL: error: MESSAGE`, the line and a caret."""
        lines = self.source.splitlines()
        out = []
        for d in self.diagnostics:
            out.append(f"{self.filename}:{d.line}:{d.column}: error: {d.message}")
            if 1 <= d.line <= len(lines):
                text, caret = lines[d.line - 1].expandtabs(1), max(d.column, 1) - 1
                if len(text) > LINE_WINDOW:  # a window of the line around the caret
                    start = max(0, min(caret - LINE_WINDOW // 2, len(text) - LINE_WINDOW))
                    left, right = ("..." if start else ""), ("..." if start + LINE_WINDOW < len(text) else "")
                    text, caret = left + text[start:start + LINE_WINDOW] + right, caret - start + len(left)
                out.append(f"    {text}")
                out.append("    " + " " * caret + "^")
        return "\n".join(out)


def error_at(span: Span | None, message: str) -> Diagnostic:
    if span is None:
        return Diagnostic(1, 1, message)
    return Diagnostic(span.line, span.column, message)
