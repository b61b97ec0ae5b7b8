"""`headcode library edit`: put a hand-written program in a library, for one head at one
level, rescored on the library's own validation and test splits.

The splits are cut again from the library's `split` record (`synth.pipeline.
recorded_splits`, refused if the cut no longer gives the recorded sequences), only
those two are captured (the model run up to the head's layer), and the program is
scored with the code `explain` scores with (`synth.scoring`), so the figures recorded
(`iou`, `iou_all_rows`, `jsd` on each split) are comparable with every other head's. The level's `kl`, `kl_estimate` and
`ppl_increase` (from `replace --measure-heads` for the old program) are dropped, not
recomputed. The head's baselines are kept (they were measured on the same test split);
a head the library did not explain gets `bos` and `uniform`. The version is bumped,
`created` set to now, and the diff printed as `library diff` prints it.
"""

from __future__ import annotations

import sys

from headcode.cli.options import add_level, add_quiet
from headcode.errors import UserError


def add_edit(sub) -> None:
    p = sub.add_parser("edit", help="replace one head's program at one level, rescored on the library's own "
                                    "validation and test splits; write a new library and print the diff")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--head", required=True, metavar="L3.H2", help="the head to explain")
    p.add_argument("--program", required=True, metavar="TEXT_OR_FILE",
                   help="its program: text, a file of one program, FILE:NAME, or a file of definitions with one "
                        "named after the head")
    add_level(p, "short")
    p.add_argument("--out", required=True, metavar="NEW", help="the library to write (atomically; may be LIB)")
    p.add_argument("--model", metavar="M", help="where to load the library's model from (default: its recorded name)")
    p.add_argument("--bump", choices=("patch", "minor", "major"), default="patch",
                   help="which part of the library's version to raise (default: patch)")
    add_quiet(p)
    p.set_defaults(func=cmd_edit)


def cmd_edit(args) -> int:
    from headcode import dsl
    from headcode.cli.library import print_diff
    from headcode.cli.program_option import resolve
    from headcode.heads import outside, parse_heads
    from headcode.library import EFFECTS, Level, Library, bump_version, identity_of
    from headcode.library.format import created_key
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model
    from headcode.synth import data, pipeline, publish
    from headcode.synth.explain import Source
    from headcode.synth.scoring import score_candidates

    if "," in args.head:
        raise UserError(f"--head takes one head, like L3.H2, not {args.head.strip()[:40]!r}")
    (head,) = parse_heads(args.head, 10**9, 10**9, what="--head")  # checked against the model below
    level = Level(args.level)
    given = resolve(args.program, (head,))[head]  # the quick refusals first: program, output, library
    Library.check_target(args.out)
    lib = Library.load(args.lib)
    if (why := outside(head, lib.model.num_layers, lib.model.num_heads, lib.model.name)) is not None:
        raise UserError(f"--head: {why}")
    check_corpus(lib.split["corpus"])
    loaded = load_model(args.model or lib.model.name)
    lib.check_model(identity_of(args.model or lib.model.name, loaded.model, loaded.tokenizer))
    splits = pipeline.recorded_splits(loaded, lib.split, names=("validation", "test"))
    for split in splits.values():
        data.record(loaded, split, progress=not args.quiet, layers=head.layer + 1)  # the model up to the head's layer
    baselines = {name: dsl.Program.of(name) for name in ("bos", "uniform")}
    validation = score_candidates(splits["validation"], {head: {"program": given.program}})[head]["program"]
    test = score_candidates(splits["test"], {head: {"program": given.program, **baselines}})[head]
    old = lib[head][level] if head in lib and level in lib[head].levels else None
    edited = lib.with_head(*head, level, given.program, source=Source.EDIT.value,
                           validation=publish.rounded(validation), test=publish.rounded(test["program"]),
                           baselines=None if head in lib else {name: round(test[name].iou, 4) for name in baselines})
    # `created` is now (or the old time, if this clock is behind it: an edit never goes back in time).
    edited = edited.replace(version=bump_version(lib.version, args.bump),
                            created=max(publish.now(), lib.created, key=created_key))
    edited.save(args.out)
    dropped = sorted(set(EFFECTS) & set(old.validation)) if old else []
    if dropped:
        print(f"headcode: note: {head} {level.value}: validation {' and '.join(dropped)} measured the old program, "
              "so they are dropped; `headcode replace --measure-heads` measures them again", file=sys.stderr)
    origin = f" ({given.origin})" if given.origin else ""
    print(f"{head} {level.value}{origin}: {given.program.text}")
    print_diff(lib, edited)
    print(f"wrote {args.out}: version {lib.version} -> {edited.version}, {len(edited)} heads, "
          f"{len(edited.programs)} programs")
    return 0
