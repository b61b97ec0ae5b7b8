"""Errors meant for the person at the terminal.

A `UserError` carries a complete one-line message; the CLI prints it and exits
non-zero without a traceback. Imports nothing else of headcode (the DSL has its
own error type, `headcode.dsl.errors.DslError`, so that it stays self-contained).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unreachable resource, explained in one line."""

    exit_code = 2
