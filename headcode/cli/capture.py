"""`headcode capture` (record attention from a model on a corpus) and `headcode heads`."""

from __future__ import annotations

import json
import sys

from headcode.cli.options import add_corpus, add_model, add_quiet, positive
from headcode.errors import UserError

SPLIT_CHOICES = ("all", "train", "validation", "test")


def register(subparsers) -> None:
    p = subparsers.add_parser("capture", help="record every head's attention from a model on a corpus")
    add_model(p)
    add_corpus(p)
    p.add_argument("--max-seqs", type=positive, metavar="N", help="stop after N sequences")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="all", help="capture only one split (default: all)")
    p.add_argument("--out", required=True, metavar="DIR", help="the capture directory (new, empty, or a capture)")
    add_quiet(p)
    p.set_defaults(func=cmd_capture)

    p = subparsers.add_parser("heads", help="profile every captured head (sinks, previous token, ...)")
    p.add_argument("capture", metavar="DIR", help="a directory written by `headcode capture`")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per head")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="all", help="use only one split (default: all)")
    p.set_defaults(func=cmd_heads)


def cmd_capture(args) -> int:
    from headcode.loaders.corpora import open_corpus, sequences
    from headcode.loaders.models import load_model
    from headcode.synth.capture import capture, check_target

    check_target(args.out)  # before the slow parts
    corpus = open_corpus(args.corpus)
    loaded = load_model(args.model)
    splits = None if args.split == "all" else [args.split]
    stream = sequences(
        corpus, loaded.tokenizer, args.max_len, add_special_tokens=loaded.add_special_tokens,
        one_per_line=args.one_per_line, seed=args.seed, shape=args.shape, splits=splits,
    )
    meta = {"corpus": corpus.name, "one_per_line": args.one_per_line, "max_len": args.max_len,
            "max_seqs": args.max_seqs, "split": args.split, "seed": args.seed, "shape": args.shape}
    out = capture(loaded, stream, args.out, meta, limit=args.max_seqs, progress=not args.quiet)
    from headcode.synth.capture import Capture

    stored = Capture.open(out)
    print(f"captured {len(stored)} sequences ({stored.manifest['tokens']} tokens), "
          f"{stored.layers} layers x {stored.heads} heads of {args.model}, into {out}")
    return 0


def cmd_heads(args) -> int:
    from headcode.synth.capture import Capture
    from headcode.synth.profiles import grid, profiles

    stored = Capture.open(args.capture)
    split = None if args.split == "all" else args.split
    if not stored.indices(split):
        raise UserError(f"{args.capture}: no captured sequences in split {split!r}")
    found = profiles(stored, split, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps([p.as_dict() for p in found], indent=1))
    else:
        print(f"{stored.model}: {len(stored.indices(split))} sequences, split {args.split}")
        print(grid(found))
    return 0
