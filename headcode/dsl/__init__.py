"""The attention-program language: grammar, syntax, checker, canonical form, printer.

    >>> from headcode.dsl import Program
    >>> Program.of("0.3*bos + 0.7*prev(1)").text
    '0.7*prev(1) + 0.3*bos'

Pipeline, one module per pass: `parse` (text to syntax) -> `check` (syntax to the
core IR in `ir`, every problem reported with a position) -> `canon` (one tree per
meaning) -> `validate` (every rule and limit, on the tree) -> `printer` (back to
text); `program` joins them into the one value the rest of headcode takes.
Imports nothing else of headcode.
"""

from __future__ import annotations

from headcode.dsl import ir
from headcode.dsl.errors import Diagnostic, DslError
from headcode.dsl.files import NamedProgram, format_programs, parse_programs
from headcode.dsl.printer import pretty, show
from headcode.dsl.program import Program, read, size_of, text_id
from headcode.dsl.tokens import TokenTable

__all__ = [
    "Diagnostic", "DslError", "NamedProgram", "Program", "format_programs", "ir", "parse_programs", "pretty",
    "TokenTable", "read", "show", "size_of", "text_id",
]
