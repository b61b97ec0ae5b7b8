"""`headcode report`: a library as a static site (or figures) to look at; the work is
headcode.report's, this module only reads the options."""

from __future__ import annotations

import sys

from headcode.cli.options import add_corpus, add_level, add_quiet, non_negative, positive
from headcode.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write a self-contained static site of a library: every head at a glance, and each head's "
                       "programs and real-vs-program attention on held-out text (docs/report.md)",
        epilog="The attention is recomputed on the library's own test split unless a corpus option is given, "
               "then on the test split of that cut.")
    p.add_argument("lib", metavar="LIB", help="the library directory")
    p.add_argument("--out", required=True, metavar="DIR", help="the report directory to write (atomically; an "
                                                                 "existing report there is replaced)")
    p.add_argument("--model", metavar="M", help="where to load the library's model from (default: its recorded name)")
    add_corpus(p, from_library=True)
    p.add_argument("--max-seqs", type=positive, metavar="N",
                   help="test sequences at most (default: all the library recorded, or its count with --corpus)")
    p.add_argument("--examples", type=non_negative, default=2, metavar="K",
                   help="held-out sequences drawn per head: the typical one, the worst fitted, then the best and "
                        "others (default: 2; 0 recomputes nothing and loads no model)")
    add_level(p, "short")
    p.add_argument("--heads", metavar="L0.H1,...",
                   help="recompute attention for these heads only (every head still gets its page)")
    p.add_argument("--format", choices=("html", "png"), default="html",
                   help="html: the site (default); png: figures only, one PNG per head, for a paper")
    p.add_argument("--force", action="store_true", help="draw even if the model's fingerprint differs from the "
                                                        "library's")
    add_quiet(p)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from headcode.heads import parse_heads
    from headcode.library import Level
    from headcode.report import Format, Settings, report

    cut = {k: getattr(args, k) for k in ("corpus", "shape", "max_len", "one_per_line", "seed")
           if getattr(args, k) is not None}
    if args.examples == 0 and (cut or args.heads or args.max_seqs or args.model or args.force):
        raise UserError("--examples 0 recomputes no attention, so it takes no text, model or --heads option")
    heads = parse_heads(args.heads, 10**9, 10**9) if args.heads else None  # checked against the library later
    settings = Settings(level=Level(args.level), examples=args.examples, heads=heads, format=Format(args.format),
                        cut=cut or None, max_seqs=args.max_seqs, model=args.model, force=args.force)
    written = report(args.lib, args.out, settings, progress=not args.quiet)
    for warning in written.warnings:
        print(f"headcode: warning: {warning}", file=sys.stderr)
    what = "pages" if settings.format is Format.HTML else "figures"
    drawn = (f"attention recomputed for {written.with_examples} ({settings.examples} example(s) each) on "
             f"{written.text}" if written.with_examples else "no attention recomputed")
    print(f"wrote {written.path}: {what} of {written.heads} heads, {drawn}; {written.bytes / 2**20:.1f} MB")
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in written.stages.items()))
    if settings.format is Format.HTML:
        print(f"open {(written.path / 'index.html').resolve().as_uri()}")
    return 0
