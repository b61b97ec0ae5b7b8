"""`headcode demo`: the main job on the embedded defaults.

For now: a few hand-written programs (demo.hc, shipped with the package), their
canonical form and id, and their attention matrices on a sentence.
"""

from __future__ import annotations

from importlib import resources

from headcode import dsl

SENTENCE = 'Tom saw a big dog. The dog ran to Tom, and Tom said: "Hello, dog!"'


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="show hand-written programs on a sentence (make demo)")
    p.add_argument("--text", default=SENTENCE, metavar="SENTENCE", help="the sentence to show them on")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from headcode.cli.programs import split_words
    from headcode.compiler import compile_program
    from headcode.compiler.tokens import TokenTable
    from headcode.plots import terminal_heatmap

    source = resources.files("headcode.cli").joinpath("demo.hc").read_text("utf-8")
    programs = dsl.parse_programs(source, "demo.hc")
    words = split_words(args.text)
    table = TokenTable.from_words(words)
    print(f"{len(programs)} hand-written programs on: {args.text}\n")
    for program in programs:
        canonical = dsl.canonical(program.pattern)
        matrix = compile_program(canonical).evaluate(table)
        for comment in program.comments:
            print(comment)
        print(f"{program.name} = {dsl.show(canonical)}    [id {dsl.program_id(canonical)}]")
        print(terminal_heatmap(matrix, words))
        print()
    return 0
