"""Errors meant for the person at the terminal.

A `UserError` carries a complete one-line message; the CLI prints it without a
traceback and exits with `exit_code`, 2: the command could not do its job (as for a
usage error), e.g. an input file is missing. Exit 1 is kept for programs that were
read and do not check (`headcode.cli` lists the convention). Imports nothing else of
headcode (the DSL has its own error type, `headcode.dsl.errors.DslError`, so that it
stays self-contained).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unreachable resource, explained in one line."""

    exit_code = 2


MAX_MESSAGE = 500  # characters of an error message printed at most: it may quote unbounded input


def bounded(message: str) -> str:
    """`message` cut to MAX_MESSAGE characters, saying how much was left out."""
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE:,} more characters)"
