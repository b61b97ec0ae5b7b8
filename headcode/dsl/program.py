"""A program as a value: its canonical tree, canonical text, id and size, made once.

    >>> from headcode.dsl import Program
    >>> p = Program.of("0.3*bos + 0.7*prev(1)")
    >>> p.text, p.id, p.size
    ('0.7*prev(1) + 0.3*bos', '97bd11ac8c3f327b', 2)

`Program.of` is the only way to make one: from text (parsed and checked, every
problem reported with its position) or from a core tree (checked by
`validate`); either way it is canonicalised once and the canonical tree is checked
against every limit of the language, so no program in the system breaks a rule
that reading its text back would enforce. Everything downstream (compiler,
library, synthesis, replacement) takes programs, so none of them re-derives the
canonical form, the text or the id. Programs compare and hash by id.
"""

from __future__ import annotations

import hashlib

from headcode.dsl import ir
from headcode.dsl.canon import canonical
from headcode.dsl.check import check
from headcode.dsl.errors import Diagnostic, DslError
from headcode.dsl.parse import parse_expression
from headcode.dsl.printer import pretty, show
from headcode.dsl.sugar import resugar_selector
from headcode.dsl.validate import limit_problems, problems


class Program:
    """A canonical program. Make one with `Program.of(text_or_tree)`."""

    __slots__ = ("ir", "text", "id", "size", "holes")

    ir: ir.Pattern  # the canonical tree
    text: str  # its canonical text, one line
    id: str  # 16 hex digits of the SHA-256 of `text`
    size: int  # the atoms a reader reads (`size_of`)
    holes: int  # numbers and open tables left to fit: 0, or a sketch (`headcode fit` fills it)

    def __init__(self) -> None:
        raise TypeError("make programs with Program.of(text_or_tree)")

    @classmethod
    def of(cls, source: str | ir.Pattern | Program) -> Program:
        """The program `source` means: text in the language, or a core tree."""
        if isinstance(source, Program):
            return source
        if isinstance(source, str):
            return from_checked(read(source))
        _refuse(problems(source), "")
        return from_checked(source)

    @classmethod
    def _made(cls, tree: ir.Pattern, text: str) -> Program:
        program = object.__new__(cls)
        for name, value in (("ir", tree), ("text", text), ("id", text_id(text)), ("size", size_of(tree)),
                            ("holes", ir.holes(tree))):
            object.__setattr__(program, name, value)
        return program

    def require_filled(self, what: str = "run") -> Program:
        """This program, or a DslError if it is a sketch (it has holes)."""
        if self.holes:
            raise DslError([Diagnostic(1, 1, f"this is a sketch with {self.holes} hole(s) ('?'); it cannot {what} "
                                             "until they are filled (headcode fit)")], self.text)
        return self

    def __setattr__(self, name, value) -> None:
        raise AttributeError("programs are immutable")

    @property
    def chars(self) -> int:
        """The length of the canonical text."""
        return len(self.text)

    def pretty(self, indent: int = 0, width: int = 88) -> str:
        """The canonical text broken over lines where it is long (`printer.pretty`)."""
        return pretty(self.ir, indent, width)

    def __eq__(self, other) -> bool:
        return isinstance(other, Program) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"Program({shown!r})"

    def __reduce__(self):
        # Sent to another process (Ray's serialization in transit) as its canonical
        # text, read again there: a program enters a process only through the DSL.
        return Program.of, (self.text,)

    def __copy__(self) -> Program:
        return self  # immutable

    def __deepcopy__(self, memo) -> Program:
        return self


def from_checked(tree: ir.Pattern) -> Program:
    """The program of a tree that the syntax checker or `validate.problems` passed."""
    tree = canonical(tree)
    text = show(tree)
    _refuse(limit_problems(tree), text, "in canonical form: ")
    return Program._made(tree, text)


def read(text: str) -> ir.Pattern:
    """Parse and check one program's text: the core tree as written (not canonical).
    Raises DslError with every problem and its position."""
    if not isinstance(text, str):
        raise TypeError(f"program text must be a str, not {type(text).__name__}")
    if not text.strip() or all(not line.strip() or line.strip().startswith("#") for line in text.splitlines()):
        raise DslError([Diagnostic(1, 1, "empty program")], text)
    try:
        return check(parse_expression(text), text)
    except DslError as err:
        raise DslError(err.diagnostics, text, err.filename) from None


def text_id(canonical_text: str) -> str:
    """The id of the program whose canonical text this is."""
    return hashlib.sha256(canonical_text.encode("utf-8")).hexdigest()[:16]


def _refuse(found: list[str], text: str, what: str = "") -> None:
    if found:
        raise DslError([Diagnostic(1, 1, f"{what}{p}" if what else p) for p in found], text)


# --- size ----------------------------------------------------------------------------


def size_of(node: object) -> int:
    """The number of atoms a reader reads in a tree (docs/dsl.md, "Size").

    An atom is a named pattern or condition (`prev(1)`, `bos`, `same_token`,
    `last(punct)`, `uniform`), a comparison, a class test (`key.punct`), a distance
    (`log_dist`), and each word of a word set or word table. Weights come with the
    terms they weigh and are not counted; so `0.7*prev(1) + 0.3*bos` has size 2,
    `softmax(4*bos + 1.2*key.punct - 0.7*log_dist)` size 3, and a table of eight
    words size 8.
    """
    if isinstance(node, ir.Select):
        return 1 if node.sel == ir.Const(True) else _atoms(node.sel)
    if isinstance(node, ir.Fallback):
        return sum(size_of(o) for o in node.options)
    if isinstance(node, ir.Mix):
        return sum(size_of(t.pattern) for t in node.terms)
    if isinstance(node, ir.Score):
        return sum(max(1, sum(_factor_atoms(f) for f in t.factors)) for t in node.terms)
    raise TypeError(f"not a pattern: {node!r}")


def _factor_atoms(f) -> int:
    if isinstance(f, ir.Dist):
        return 1
    if isinstance(f, ir.WordTable):
        return len(f.entries)
    if isinstance(f, ir.OpenTable):
        return f.limit
    return _atoms(f)


def _atoms(sel) -> int:
    if resugar_selector(sel) is not None:
        return 1
    if isinstance(sel, ir.WordSet):
        return len(sel.words)
    if isinstance(sel, ir.Not):
        return _atoms(sel.arg)
    if isinstance(sel, (ir.And, ir.Or)):
        return sum(_atoms(a) for a in sel.args)
    return 1
