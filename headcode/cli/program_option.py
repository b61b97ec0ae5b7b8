"""`--program TEXT_OR_FILE`, the hand-written program of `score` and `library edit`.

The value is read as, in this order:

  * `FILE:NAME`, where FILE is an existing file of definitions: its definition NAME;
  * FILE, an existing file: a file of definitions (`NAME = PROGRAM`, `docs/dsl.md`),
    or a file holding one bare program (no `NAME =` line). With one definition, that
    one is used; with several, each head takes the definition named after it
    (`L3.H2 = ...`), and a head none is named after is refused, as is a file with no
    definition;
  * else program text (`"prev(1) else bos"`); text that does not check but looks like
    a path (it ends with `.hc` or holds a `/`) is reported as a missing file instead.

A program that does not check is a DslError with its file, line and column (exit 1);
so is a sketch, whose holes (`?`) must be filled first (`headcode fit`). Anything
else wrong with the value is a one-line UserError (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from headcode import dsl
from headcode.dsl import terminals
from headcode.errors import UserError
from headcode.heads import Head

_DEFINITION = re.compile(rf"^[ \t]*(?:{terminals.DEFNAME})[ \t]*=(?!=)", re.MULTILINE)  # grammar.lark's DEFNAME
_NAME = re.compile(rf"(?:{terminals.DEFNAME})\Z")


@dataclass(frozen=True)
class Given:
    """A program as given, and where it came from: the file (None for text) and the
    name of its definition there (None for a file of one bare program)."""

    program: dsl.Program
    file: str | None = None
    name: str | None = None

    @property
    def origin(self) -> str | None:
        """None for text, else `FILE` or `NAME of FILE`."""
        return None if self.file is None else self.file if self.name is None else f"{self.name} of {self.file}"


def describe(given: dict) -> str:
    """What `resolve` gave, for a report's first line: `the given program`, `program
    NAME of FILE`, `the program of FILE` or `each head's program in FILE`."""
    first = next(iter(given.values()))
    if first.file is None:
        return "the given program"
    if len({g.name for g in given.values()}) > 1:
        return f"each head's program in {first.file}"
    return f"the program of {first.file}" if first.name is None else f"program {first.origin}"


def resolve(value: str, heads: tuple[Head, ...], what: str = "--program", sketch: bool = False) -> dict[Head, Given]:
    """The program each of `heads` is to be scored or explained by (see the module doc);
    with `sketch`, the sketch each is to be fitted with (`headcode fit`): holes welcome."""
    if not value.strip():
        raise UserError(f"{what} is empty: give a program, or a file of programs")
    path, name = _file_of(value)
    if path is None:
        program = _text(value, "<program>", looks_like_path=True)
        return dict.fromkeys(heads, Given(_checked(program, value, "<program>", sketch=sketch)))
    source = _read(path)
    if not _DEFINITION.search(_uncommented(source)):  # one bare program
        if name is not None:
            raise UserError(f"{path}: holds one program without a name, so there is no {name!r} in it")
        if not source.strip() or not _uncommented(source).strip():
            raise UserError(f"{path}: holds no program")
        return dict.fromkeys(heads, Given(_checked(_text(source, path), source, path, sketch=sketch), path))
    named = {d.name: d for d in dsl.parse_programs(source, path)}
    if not named:
        raise UserError(f"{path}: holds no program")
    if name is not None:
        if name not in named:
            raise UserError(f"{path}: no program named {name!r} (it defines {_listed(named)})")
        chosen = dict.fromkeys(heads, named[name])
    elif len(named) == 1:
        chosen = dict.fromkeys(heads, next(iter(named.values())))
    else:
        missing = [str(h) for h in heads if str(h) not in named]
        if missing:
            raise UserError(f"{path}: holds {len(named)} programs ({_listed(named)}) and none is named "
                            f"{missing[0]}: name one as {path}:NAME, or name them after the heads ({missing[0]} = ...)")
        chosen = {h: named[str(h)] for h in heads}
    return {h: Given(_checked(d.program, source, path, d.line, sketch), path, d.name) for h, d in chosen.items()}


def _file_of(value: str) -> tuple[str | None, str | None]:
    """(path, definition name) when `value` names an existing file (or FILE:NAME)."""
    if Path(value).is_file():
        return value, None
    stem, colon, name = value.rpartition(":")
    if colon and _NAME.match(name) and Path(stem).is_file():
        return stem, name
    if Path(value).exists():  # a directory, a FIFO, ...: refused by the reader with its reason
        return value, None
    return None, None


def _read(path: str) -> str:
    from headcode.cli.programs import read_source

    return read_source(path)


def _text(text: str, filename: str, looks_like_path: bool = False) -> dsl.Program:
    """The program of `text`; with `looks_like_path`, text that does not check and
    reads like a file name (`x.hc`, `dir/x`) is a missing file, not a bad program."""
    try:
        return dsl.Program.of(text)
    except dsl.DslError as err:
        name = text.strip()
        if looks_like_path and (name.endswith(".hc") or "/" in name) and not any(c in name for c in "(){}*+ "):
            raise UserError(f"{name}: no such program file") from None
        raise err.with_filename(filename) from None


def _checked(program: dsl.Program, source: str, filename: str, line: int = 1, sketch: bool = False) -> dsl.Program:
    """Refuse a sketch where a program must run (its holes must be filled first), and
    a filled program where a sketch is to be fitted."""
    if sketch and not program.holes:
        raise UserError(f"{filename}: this program has no holes ('?') to fill; score it with "
                        "headcode score --program")
    if not sketch and program.holes:
        at = _first_hole(source, line)
        raise dsl.DslError([dsl.Diagnostic(*at, f"this is a sketch with {program.holes} hole(s) ('?'); "
                                                "fill them first (headcode fit), then give the filled program")],
                           source, filename)
    return program


def _first_hole(source: str, line: int) -> tuple[int, int]:
    """(line, column) of the first `?` outside strings and comments, from `line` on."""
    lines = source.splitlines()
    for number in range(line, len(lines) + 1):
        text, quoted, k = lines[number - 1], False, 0
        while k < len(text):
            c = text[k]
            if quoted and c == "\\":
                k += 1
            elif c == '"':
                quoted = not quoted
            elif not quoted and c == "#":
                break
            elif not quoted and c == "?":
                return number, k + 1
            k += 1
    return line, 1


def _uncommented(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))


def _listed(named) -> str:
    names = list(named)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
