"""`headcode library`: inspect, verify, diff, merge and summarise program libraries."""

from __future__ import annotations

import json

from headcode.errors import UserError


def register(subparsers) -> None:
    lib = subparsers.add_parser("library", help="inspect, verify, diff, merge and summarise program libraries")
    sub = lib.add_subparsers(dest="library_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("inspect", help="show a library's model, heads and programs")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check a library (format, content hash, programs, heads); exit 0 if sound")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--model", metavar="MODEL", help="also check that the library was fitted to this model")
    p.add_argument("--force", action="store_true", help="with --model: accept a different model (warns)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("diff", help="what changes from library A to library B")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("merge", help="merge two libraries of the same model (refuses conflicting heads)")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--out", required=True, metavar="C", help="the library directory to write (atomically)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("stats", help="programs by family, heads per program, score quantiles")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)


def _load(path: str):
    from headcode.library import Library

    return Library.load(path)


def _entry(lib, h) -> dict:
    return {**h.to_json(), "text": lib.program_text(h.program)}


def cmd_inspect(args) -> int:
    from headcode.library import FORMAT_VERSION

    lib = _load(args.lib)
    if args.json:
        print(json.dumps({
            "format_version": FORMAT_VERSION,
            "version": lib.version,
            "created": lib.created,
            "content_hash": lib.content_hash,
            "model": lib.model.to_json(),
            "corpus": dict(lib.corpus),
            "num_programs": len(lib.programs),
            "num_heads": len(lib),
            "merged": dict(lib.merged),
            "heads": [_entry(lib, h) for h in lib.values()],
            "programs": {pid: lib.program_text(pid) for pid in lib.programs},
        }, indent=2, ensure_ascii=False))
        return 0
    m = lib.model
    print(f"library {args.lib}: version {lib.version}, created {lib.created}, format {FORMAT_VERSION}")
    print(f"model {m.name} ({m.architecture}, {m.num_layers} layers x {m.num_heads} heads, "
          f"{m.num_kv_heads} kv heads, {m.fingerprint[:19]}...)")
    corpus = ", ".join(f"{k}={v}" for k, v in lib.corpus.items())
    print(f"corpus {corpus}")
    print(f"{len(lib)} heads, {len(lib.programs)} programs, {len(lib.merged)} merged, {lib.content_hash}")
    for h in lib.values():
        scores = " ".join(f"{split[0]}.{k}={v:.3f}" for split in ("validation", "test")
                          for k, v in getattr(h, split).items())
        print(f"  L{h.layer}.H{h.head}\t{h.program}\t{scores}\t{lib.program_text(h.program)}")
    return 0


def cmd_verify(args) -> int:
    from headcode.library import FORMAT_VERSION, verify

    lib = verify(args.lib)
    if args.force and not args.model:
        raise UserError("--force only makes sense with --model")
    if args.model:
        from headcode.library import identity_of
        from headcode.loaders.models import load_model

        loaded = load_model(args.model)
        for warning in lib.check_model(identity_of(args.model, loaded.model, loaded.tokenizer), force=args.force):
            print(f"warning: {warning}")
    print(f"OK {args.lib}: format {FORMAT_VERSION}, version {lib.version}, model {lib.model.name}, {len(lib)} heads, "
          f"{len(lib.programs)} programs, {lib.content_hash}")
    return 0


def cmd_diff(args) -> int:
    d = _load(args.a).diff(_load(args.b))
    if not d:
        print("no differences")
        return 0
    for line in d.lines():
        print(line)
    print(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed head(s)")
    return 0


def cmd_merge(args) -> int:
    merged = _load(args.a).merge(_load(args.b))
    merged.save(args.out)
    print(f"wrote {args.out}: version {merged.version}, {len(merged)} heads, {len(merged.programs)} programs")
    return 0


def cmd_stats(args) -> int:
    from headcode.library.stats import summary

    s = summary(_load(args.lib))
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"{s['num_heads']} heads, {s['num_programs']} programs")
    print("families (programs / heads):")
    for f, n in s["families"].items():
        print(f"  {f:<20} {n['programs']:>5} {n['heads']:>6}")
    print("heads per program (heads: programs):")
    for k, v in s["heads_per_program"].items():
        print(f"  {k:>5}: {v}")
    for split, metrics in s["scores"].items():
        for metric, q in metrics.items():
            quant = " ".join(f"{k}={v:.3f}" for k, v in q.items() if k.startswith("q"))
            print(f"{split} {metric}: n={q['count']} mean={q['mean']:.3f} {quant}")
    return 0
