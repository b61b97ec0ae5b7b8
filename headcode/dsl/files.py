"""Program files: several named programs, with comments, written and edited by hand.

    # Heads that look back one token.
    prev_token = prev(1)

    # A sink with a bonus for punctuation, fading with distance.
    punct_sink = softmax(4*bos + 1.2*key.punct - 0.7*log_dist)

A definition is `NAME = PROGRAM`; names may contain letters, digits, `_`, `.` and
`-` (so `L3.H7` works) and must be unique in a file. Programs may span lines. `#`
starts a comment; the full-line comments directly above a definition are its
documentation and `headcode fmt` keeps them, as it keeps the file's leading
comment block.
"""

from __future__ import annotations

import contextlib
import gc

from dataclasses import dataclass

from headcode.dsl.check import check
from headcode.dsl.errors import Diagnostic, DslError
from headcode.dsl.parse import parse_file
from headcode.dsl.program import Program, from_checked


@dataclass(frozen=True)
class NamedProgram:
    """One definition: its name, program, documentation comments and line.
    `as_written` says whether the text was already the canonical form."""

    name: str
    program: Program
    comments: tuple[str, ...] = ()
    line: int = 0
    as_written: bool = True


@contextlib.contextmanager
def _acyclic_work():
    """Pause the cyclic garbage collector while a file's programs are built.

    Parsing, checking and canonicalising a library's programs makes hundreds of
    thousands of small objects (syntax nodes, frozen IR), none in a reference
    cycle, so the cyclic collector can free none of them; traversing them again and
    again as they accumulate took 3.3 of the 8.6 s that the bundled library's 502
    programs took to read. Reference counting still frees everything on time; the
    collector is restored (and so runs as before) when the file is read.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_programs(text: str, filename: str = "<file>") -> tuple[NamedProgram, ...]:
    """Parse and check every definition; report all problems of the file at once."""
    if not isinstance(text, str):
        raise TypeError(f"a program file's text must be a str, not {type(text).__name__}")
    with _acyclic_work():
        return _parse_programs(text, filename)


def _parse_programs(text: str, filename: str) -> tuple[NamedProgram, ...]:
    try:
        definitions = parse_file(text)
    except DslError as err:
        raise DslError(err.diagnostics, text, filename) from None
    diagnostics: list[Diagnostic] = []
    programs, seen = [], {}
    for d in definitions:
        if d.name in seen:
            diagnostics.append(Diagnostic(d.span.line, d.span.column,
                                          f"program '{d.name}' is already defined on line {seen[d.name]}"))
        seen.setdefault(d.name, d.span.line)
        try:
            tree = check(d.body)
            program = from_checked(tree)
        except DslError as err:
            diagnostics.extend(_placed(err.diagnostics, d.span.line, d.span.column))
            continue
        programs.append(NamedProgram(d.name, program, d.comments, d.span.line, program.ir == tree))
    if diagnostics:
        raise DslError(diagnostics, text, filename)
    return tuple(programs)


def header(text: str) -> tuple[str, ...]:
    """The file's leading comment block, when a blank line separates it from what follows."""
    lines = text.splitlines()
    block = []
    for k, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped)
            continue
        return tuple(block) if block and not stripped else ()
    return tuple(block)


def format_programs(programs: tuple[NamedProgram, ...], leading: tuple[str, ...] = ()) -> str:
    """The canonical, pretty text of a program file."""
    chunks = ["\n".join(leading)] if leading else []
    for p in programs:
        body = p.program.pretty(indent=len(p.name) + 3)
        chunks.append("\n".join(p.comments + (f"{p.name} = {body}",)))
    return "\n\n".join(chunks) + "\n" if chunks else ""


def _placed(diagnostics, line: int, column: int) -> list[Diagnostic]:
    """Problems of a whole tree (reported at 1:1) placed at its definition instead."""
    return [Diagnostic(line, column, d.message) if (d.line, d.column) == (1, 1) else d for d in diagnostics]
