"""`headcode library`: inspect, verify, diff, merge, summarise and edit program libraries
(`edit` lives in `headcode.cli.edit`)."""

from __future__ import annotations

import json

from headcode.errors import UserError


def register(subparsers) -> None:
    lib = subparsers.add_parser("library", help="inspect, verify, diff, merge, summarise and edit program libraries")
    sub = lib.add_subparsers(dest="library_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("inspect", help="show a library's model, heads and programs (short level first)")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--full", action="store_true", help="print long programs whole (default: cut at 200 characters)")
    p.add_argument("--heads", metavar="L0.H1,...", help="only these heads (default: every head)")
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

    p = sub.add_parser("stats", help="per level: distinct programs and shapes, sizes, families, score quantiles")
    p.add_argument("lib", metavar="LIB")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    from headcode.cli.edit import add_edit

    add_edit(sub)


def _load(path: str):
    from headcode.library import Library

    return Library.load(path)


def _head(lib, h) -> dict:
    """A head as `inspect --json` lists it: per level its program and what it is to a reader."""
    from headcode.library.format import reading

    levels = {}
    for level, e in h.levels.items():
        program = lib.programs[e.program]
        levels[level.value] = {"program": program.text, "id": e.program, **reading(program), "source": e.source,
                               "validation": dict(e.validation), "test": dict(e.test)}
    return {"layer": h.layer, "head": h.head, "baselines": dict(h.baselines), "levels": levels}


def cmd_inspect(args) -> int:
    from headcode.dsl.describe import describe, family
    from headcode.library import FORMAT_VERSION

    from headcode.heads import parse_heads

    lib = _load(args.lib)
    shown_heads = list(lib.values())
    if args.heads is not None:
        wanted = parse_heads(args.heads, lib.model.num_layers, lib.model.num_heads)
        missing = [f"L{l}.H{h}" for l, h in wanted if (l, h) not in lib]
        if missing:
            raise UserError(f"--heads: {args.lib} has no program for {', '.join(missing)}")
        shown_heads = [lib[h] for h in wanted]
    if args.json:
        print(json.dumps({
            "format_version": FORMAT_VERSION,
            "version": lib.version,
            "created": lib.created,
            "content_hash": lib.content_hash,
            "model": lib.model.to_json(),
            "split": {k: dict(v) if not isinstance(v, (str, int, bool)) else v for k, v in lib.split.items()},
            "levels": [level.value for level in lib.levels],
            "num_programs": len(lib.programs),
            "num_heads": len(lib),
            "merged": dict(lib.merged),
            "heads": [_head(lib, h) for h in shown_heads],
        }, indent=2, ensure_ascii=False))
        return 0
    m, split = lib.model, lib.split
    print(f"library {args.lib}: version {lib.version}, created {lib.created}, format {FORMAT_VERSION}")
    print(f"model {m.name} ({m.architecture}, {m.num_layers} layers x {m.num_heads} heads, "
          f"{m.num_kv_heads} kv heads, {m.fingerprint[:19]}...)")
    print(f"split of {split['corpus']}: {split['shape']} sequences of at most {split['max_len']} tokens, seed "
          f"{split['seed']}; " + ", ".join(f"{n} {k}" for k, n in split["sequences"].items()))
    print(f"{len(lib)} heads, {len(lib.programs)} programs, levels {', '.join(x.value for x in lib.levels)}, "
          f"{len(lib.merged)} merged, {lib.content_hash}")
    for h in shown_heads:
        baselines = ", ".join(f"{k} {v:.3f}" for k, v in h.baselines.items())
        print(f"\n{h.name}  (test iou of the baselines: {baselines})")
        for level, e in h.levels.items():  # short first: the one people read
            program = lib.programs[e.program]
            scores = " ".join(f"{split[0]}.{k}={v:.3f}" for split in ("validation", "test")
                              for k, v in getattr(e, split).items() if k in ("iou", "kl", "kl_estimate"))
            shown = program.text if len(program.text) <= 200 or args.full else program.text[:197] + "..."
            print(f"  {level.value:<5} {family(program).value}: {describe(program)}")
            print(f"        {shown}")
            print(f"        size {program.size}, {program.chars} chars, {e.source}; {scores}")
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
    print_diff(_load(args.a), _load(args.b))
    return 0


def print_diff(a, b) -> None:
    """What `library diff A B` prints: one line per difference, then the counts."""
    d = a.diff(b)
    if not d:
        print("no differences")
        return
    for line in d.lines():
        print(line)
    print(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed head(s)")


def cmd_merge(args) -> int:
    merged = _load(args.a).merge(_load(args.b))
    merged.save(args.out)
    print(f"wrote {args.out}: version {merged.version}, {len(merged)} heads, {len(merged.programs)} programs")
    return 0


def cmd_stats(args) -> int:
    from headcode.library.stats import summary

    s = summary(_load(args.lib))
    if args.json:
        print(json.dumps(s, indent=2, ensure_ascii=False))
        return 0
    print(f"{s['num_heads']} heads, {s['num_programs']} programs")
    for level, t in s["levels"].items():
        print(f"\n{level}: {t['heads']} heads, {t['distinct_programs']} distinct programs, "
              f"{t['distinct_shapes']} distinct shapes")
        for what in ("size", "chars"):
            q = t[what]
            print(f"  {what:<6} median {q['q50']:g}, quartiles {q['q25']:g}-{q['q75']:g}, largest {q['q100']:g}")
        print("  families: " + ", ".join(f"{f} {n}" for f, n in t["families"].items()))
        print("  sources: " + ", ".join(f"{f} {n}" for f, n in t["sources"].items()))
        print("  most shared shapes (heads: shape):")
        for shape in t["shapes"][:8]:
            text = shape["text"] if len(shape["text"]) <= 90 else shape["text"][:87] + "..."
            print(f"    {shape['heads']:>4}: {text}")
        for split, figures in t["scores"].items():
            for figure, q in figures.items():
                print(f"  {split} {figure}: n={q['count']} mean={q['mean']:.3f} "
                      + " ".join(f"{k}={v:.3f}" for k, v in q.items() if k.startswith("q")))
        if t["weakest"]:
            print("  least well explained (test iou): "
                  + ", ".join(f"{w['head']} {w['test_iou']:.3f}" for w in t["weakest"]))
    return 0
