"""Commands for writing programs by hand: check, fmt, canon, describe, show."""

from __future__ import annotations

import json
import re
import sys

from headcode import dsl
from headcode.errors import UserError, bounded
from headcode.fileio import check_writable, read_text, write_text


def register(subparsers) -> None:
    p = subparsers.add_parser("check", help="check program files; report every problem with its position")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_check)

    p = subparsers.add_parser("fmt", help="print a program file in canonical, pretty form")
    p.add_argument("file", metavar="FILE")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is not canonical; print nothing else")
    mode.add_argument("-w", "--write", action="store_true", help="rewrite the file in place (atomically)")
    p.set_defaults(func=cmd_fmt)

    p = subparsers.add_parser("canon", help="print a program's canonical text, id and size")
    p.add_argument("program", metavar="PROGRAM", help="program text, e.g. '0.3*bos + 0.7*prev(1)'")
    p.add_argument("--json", action="store_true", help='print {"canonical": ..., "id": ..., "size": ..., "chars": ...}')
    p.set_defaults(func=cmd_canon)

    p = subparsers.add_parser("describe", help="say what a program does in one sentence, and its family")
    p.add_argument("program", metavar="PROGRAM", help="program text, e.g. 'last(punct) else bos'")
    p.add_argument("--json", action="store_true",
                   help='print {"program", "description", "family", "shape", "size", "chars"}')
    p.set_defaults(func=cmd_describe)

    p = subparsers.add_parser("show", help="show a program's attention matrix on a sentence")
    p.add_argument("program", metavar="PROGRAM")
    p.add_argument("--text", required=True, metavar="SENTENCE", help="the sentence (split into words and punctuation)")
    p.add_argument("--png", metavar="OUT.png", help="also write a PNG heatmap")
    p.set_defaults(func=cmd_show)


def read_source(path: str) -> str:
    try:
        return read_text(path)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from None


def cmd_check(args) -> int:
    """Every file is checked, whatever the others gave. Exit 2 if some file could not
    be read (the same as every command's missing or unreadable input), else 1 if
    some program does not check, else 0."""
    unreadable = invalid = False
    for path in args.files:
        try:
            programs = dsl.parse_programs(read_source(path), path)
        except UserError as err:
            print(f"headcode: error: {bounded(str(err))}", file=sys.stderr)
            unreadable = True
            continue
        except dsl.DslError as err:
            print(err.render(), file=sys.stderr)
            invalid = True
            continue
        print(f"{path}: {len(programs)} program(s) ok")
    return UserError.exit_code if unreadable else 1 if invalid else 0


def cmd_fmt(args) -> int:
    source = read_source(args.file)
    programs = dsl.parse_programs(source, args.file)
    formatted = dsl.format_programs(programs, dsl.files.header(source))
    if args.check:
        if formatted != source:
            print(f"{args.file}: not in canonical form (run: headcode fmt --write {args.file})", file=sys.stderr)
            return 1
        return 0
    if args.write:
        if formatted != source:
            try:
                write_text(args.file, formatted)
            except OSError as err:
                raise UserError(f"{args.file}: cannot write: {err.strerror or err}") from None
        return 0
    sys.stdout.write(formatted)
    return 0


def cmd_canon(args) -> int:
    program = dsl.Program.of(args.program)
    if args.json:
        print(json.dumps({"canonical": program.text, "id": program.id, "size": program.size,
                          "chars": program.chars, "holes": program.holes}))
    else:
        print(program.text)
        print(f"id: {program.id}")
        print(f"size: {program.size} atoms, {program.chars} characters")
        if program.holes:
            print(f"sketch: {program.holes} hole(s) to fill (headcode fit)")
    return 0


def cmd_describe(args) -> int:
    from headcode.dsl.describe import describe, family
    from headcode.dsl.shape import shape_text

    program = dsl.Program.of(args.program)
    if args.json:
        print(json.dumps({"program": program.text, "description": describe(program), "family": family(program).value,
                          "shape": shape_text(program), "size": program.size, "chars": program.chars},
                         ensure_ascii=False))
    else:
        print(describe(program))
        print(f"family: {family(program).value}")
    return 0


_WORDS = re.compile(r"\n|[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_", re.UNICODE)


def split_words(text: str) -> list[str]:
    """Words, punctuation marks and line breaks, in order (the `show` tokenizer)."""
    return _WORDS.findall(text)


def cmd_show(args) -> int:
    from headcode.compiler import compile_program
    from headcode.dsl import TokenTable
    from headcode.plots import png_heatmap, terminal_heatmap

    program = dsl.Program.of(args.program)
    words = split_words(args.text)
    if not words:
        raise UserError("--text is empty: give a sentence to show the program on")
    if args.png:
        check_writable(args.png, what="heatmap")
    table = TokenTable.from_words(words)
    matrix = compile_program(program).evaluate(table)
    print(program.text)
    print(terminal_heatmap(matrix, words))
    if args.png:
        try:
            png_heatmap(matrix, words, program.text, args.png)
        except OSError as err:
            raise UserError(f"{args.png}: cannot write: {err.strerror or err}") from None
        print(f"wrote {args.png}")
    return 0
