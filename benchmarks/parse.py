"""Parse benchmark: the hand-written parser against Lark's fastest configurations,
on the programs of the bundled library, measured in the same run.

Issue "one grammar": keep the hand parser (`headcode.dsl.fastparse`) only if Lark
cannot come within 2x of it. The contenders, each reading the same text into
definitions (`syntax.Definition` nodes):

  hand              `fastparse.parse(text, "file")`, the path used today;
  lark-transformer  Lark LALR with a Transformer given to `Lark(transformer=...)`, so
                    the parser builds syntax nodes as it reduces and no tree is made,
                    with `cache=True`; once with the contextual lexer, once with the
                    basic one (which cannot read the language: without the parser's
                    context a number such as `0.47` lexes as a SIGNED_WEIGHT). Lark passes no meta to such a transformer, so spans are
                    made from the first and last child (tokens or nodes): about the
                    same work as the real spans, not always the same figures;
  lark-tree         today's general path: a tree with `propagate_positions`, then
                    `parse._ToSyntax` over it.

Each time is the median over `--repeats`; ratios are against `hand`. Lark's tree path
takes about 30 s on the whole library, so the contest reads the first `--programs`
definitions (all of them with `--programs 0`); `hand_library_s` is the hand parser
on the whole file, and `--load` adds one full `bundled(...)` load (parse, check,
canonical form, ids; the issue's limit is 10 s).

    .venv/bin/python benchmarks/parse.py [--model smollm2-135m] [--programs 30] [--repeats 3] [--load]
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import time


def programs_text(model: str, count: int) -> tuple[str, int]:
    """The bundled library's programs file, cut after its first `count` definitions (0: all)."""
    from headcode.library.bundled import path
    from headcode.library.format import PROGRAMS

    text = (path(model) / PROGRAMS).read_text("utf-8")
    starts = [m.start() for m in re.finditer(r"(?m)^p_", text)]
    if count and count < len(starts):
        return text[:starts[count]], count
    return text, len(starts)


def lark_transformer(lexer: str):
    """A Lark LALR parser of grammar.lark that builds syntax nodes while it parses."""
    import lark
    from importlib import resources

    from headcode.dsl import syntax as s
    from headcode.dsl.errors import Span

    parse = importlib.import_module("headcode.dsl.parse")

    def start(c):
        if isinstance(c, lark.Token):
            return c.line, c.column
        span = c[1] if isinstance(c, tuple) else c.span
        return span.line, span.column

    def end(c):
        if isinstance(c, lark.Token):
            return c.end_line, c.end_column
        span = c[1] if isinstance(c, tuple) else c.span
        return span.end_line, span.end_column

    def span(children) -> Span:
        return Span(*start(children[0]), *end(children[-1]))

    class ToSyntax(lark.Transformer):
        def number(self, c):
            return s.Number(str(c[0]), span=span(c))

        def name(self, c):
            return s.Name(str(c[0]), span=span(c))

        def true(self, c):
            return s.Bool(True, span=span(c))

        def false(self, c):
            return s.Bool(False, span=span(c))

        def call(self, c):
            return s.Call(str(c[0]), tuple(c[1:]), span=span(c))

        def attr(self, c):
            return s.Attr(str(c[0]), str(c[1]), span=span(c))

        def table(self, c):
            entries = c[2:]
            return s.TableLit(str(c[0]), str(c[1]), tuple(e for e, _ in entries), span=span(c),
                              entry_spans=tuple(w for _, w in entries))

        def set_entry(self, c):
            return (parse._word(c[0]), None), span(c)

        def weighted_entry(self, c):
            return (parse._word(c[0]), float(c[1])), span(c)

        def negate(self, c):
            return s.Negate(c[1], minus=c[0] == "-", span=span(c))

        def not_expr(self, c):
            return s.Not(c[-1], span=span(c))

        def comparison(self, c):
            return s.Compare(c[0], str(c[1]), c[2], span=span(c))

        def sum_chain(self, c):
            return s.SumChain((("+", c[0]), *zip(map(str, c[1::2]), c[2::2])), span=span(c))

        def product_chain(self, c):
            return s.ProductChain(tuple(c), span=span(c))

        def and_chain(self, c):
            return s.AndChain(tuple(c), span=span(c))

        def or_chain(self, c):
            return s.OrChain(tuple(c), span=span(c))

        def else_chain(self, c):
            return s.ElseChain(tuple(c), span=span(c))

        def definition(self, c):
            return s.Definition(str(c[0]), c[1], span=Span(*start(c[0]), *end(c[0])))

        def file(self, c):
            return c

    grammar = resources.files("headcode.dsl").joinpath("grammar.lark").read_text("utf-8")
    return lark.Lark(grammar, start="file", parser="lalr", lexer=lexer, transformer=ToSyntax(),
                     maybe_placeholders=False, cache=True)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--programs", type=int, default=30, help="definitions to read (0: the whole library)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="also time one full load of the bundled library")
    args = parser.parse_args()

    import lark

    from headcode.dsl import fastparse

    parse = importlib.import_module("headcode.dsl.parse")
    text, count = programs_text(args.model, args.programs)
    whole, total = programs_text(args.model, 0)

    build = {}
    contenders = {"hand": lambda: fastparse.parse(text, "file")}
    for lexer in ("contextual", "basic"):
        start = time.perf_counter()
        lalr = lark_transformer(lexer)  # (the first build of a run may write Lark's cache)
        build[lexer] = time.perf_counter() - start
        contenders[f"lark-transformer-{lexer}"] = lambda lalr=lalr: lalr.parse(text)
    contenders["lark-tree"] = lambda: parse._transform(parse._parse(text, "file"), text).children

    seconds, failed = {}, {}
    for label, fn in contenders.items():
        try:
            seconds[label], out = timed(fn, args.repeats)
        except lark.exceptions.UnexpectedInput as err:
            failed[label] = f"cannot read the library: {str(err).splitlines()[0]}"
            continue
        if len(out) != count:
            raise SystemExit(f"{label} read {len(out)} definitions, not {count}")
    hand = seconds["hand"]
    report = {
        "model": args.model, "programs": count, "chars": len(text), "repeats": args.repeats,
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "ratio_vs_hand": {k: round(v / hand, 2) for k, v in seconds.items()},
        "failed": failed,
        "lark_build_s": {k: round(v, 3) for k, v in build.items()},
        "hand_library_s": round(timed(lambda: fastparse.parse(whole, "file"), args.repeats)[0], 3),
        "library_programs": total, "library_chars": len(whole),
    }
    if args.load:
        from headcode.library import bundled

        start = time.perf_counter()
        bundled(args.model)
        report["load_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
