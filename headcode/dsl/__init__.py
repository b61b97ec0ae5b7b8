"""The attention-program language: grammar, syntax, checker, canonical form, printer.

    >>> from headcode import dsl
    >>> p = dsl.parse("0.3*bos + 0.7*prev(1)")
    >>> dsl.canonical_text(p)
    '0.7*prev(1) + 0.3*bos'

Pipeline, one module per pass: `parse` (text to syntax) -> `check` (syntax to the
core IR in `ir`, every problem reported with a position) -> `canon` (one tree per
meaning) -> `printer` (back to text). Imports nothing else of headcode.
"""

from __future__ import annotations

import hashlib

from headcode.dsl import ir
from headcode.dsl.canon import canonical
from headcode.dsl.check import check
from headcode.dsl.errors import Diagnostic, DslError
from headcode.dsl.files import NamedProgram, format_programs, parse_programs
from headcode.dsl.parse import parse_expression
from headcode.dsl.printer import pretty, show

__all__ = [
    "Diagnostic", "DslError", "NamedProgram", "canonical", "canonical_text", "format_programs",
    "ir", "parse", "parse_programs", "pretty", "program_id", "show", "text_id",
]


def parse(text: str) -> ir.Pattern:
    """Parse and check one program; raises DslError (with every problem) on bad text."""
    if not text.strip() or all(not line.strip() or line.strip().startswith("#") for line in text.splitlines()):
        raise DslError([Diagnostic(1, 1, "empty program")], text)
    try:
        return check(parse_expression(text), text)
    except DslError as err:
        raise DslError(err.diagnostics, text, err.filename) from None


def canonical_text(program: ir.Pattern | str) -> str:
    """The canonical text of a program (parsing it first if given text)."""
    pattern = parse(program) if isinstance(program, str) else program
    return show(canonical(pattern))


def program_id(program: ir.Pattern | str) -> str:
    """A program's identity: 16 hex digits of the SHA-256 of its canonical text."""
    return text_id(canonical_text(program))


def text_id(canonical_text: str) -> str:
    """The id of the program whose canonical text this is (`program_id` for a caller
    that has the canonical text already)."""
    return hashlib.sha256(canonical_text.encode("utf-8")).hexdigest()[:16]
