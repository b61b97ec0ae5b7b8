"""The `headcode` command line: the only part that knows every other part.

Each command group lives in its own module with a `register(subparsers)` function
that adds its sub-commands and sets `func` on them. `main` turns every expected
failure (bad program, unreadable file, unreachable model) into one line on stderr
and a non-zero exit, the same for every command (README "Exit status"):

  0  success;
  1  the programs were read and are wrong: a program that does not check
     (`check`, or a program argument or file of any command), a file that is not in
     canonical form (`fmt --check`);
  2  the command could not do its job: a usage error (argparse), a bad option value,
     a missing, unreadable or damaged input file or directory (program file, corpus,
     capture, library, model), an output that cannot be written, an unreachable model
     (every `UserError`; `check` too, for a file it cannot read);
  130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Command modules, in the order they appear in `headcode --help`.
COMMAND_MODULES = (
    "headcode.cli.programs",  # check, fmt, canon, describe, show
    "headcode.cli.demo",  # demo
    "headcode.cli.bench",  # bench
    "headcode.cli.capture",  # capture, heads
    "headcode.cli.explain",  # explain, score, predict
    "headcode.cli.fit",  # fit
    "headcode.cli.library",  # library inspect, verify, diff, merge, stats, edit (headcode.cli.edit)
    "headcode.cli.replace",  # replace
    "headcode.cli.report",  # report
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors (which quote the bad value) bounded too."""

    def error(self, message: str):
        from headcode.errors import bounded

        super().error(bounded(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="headcode",
        description="Attention heads explained by small, safe, fast programs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from headcode.dsl.errors import DslError
    from headcode.errors import UserError, bounded

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DslError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except UserError as err:
        print(f"headcode: error: {bounded(str(err))}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # the reader of our output went away (`| head`)
        return 0
    except OSError as err:  # a file that became unreadable or unwritable after the early checks
        where = f"{err.filename}: " if err.filename else ""
        print(f"headcode: error: {bounded(f'{where}{err.strerror or err}')}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("headcode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
