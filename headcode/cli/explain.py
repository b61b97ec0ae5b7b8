"""`headcode explain` (fit a library), `headcode score` (a library on any text) and
`headcode predict` (a library's matrices for one text, for independent checks)."""

from __future__ import annotations

import json
import sys

import numpy as np

from headcode.cli.options import (add_corpus, add_level, add_model, add_quiet, cut, non_negative, positive,
                                  positive_seconds)
from headcode.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("explain", help="fit a program to every head of a model and write a library")
    add_model(p)
    add_corpus(p)
    p.add_argument("--heads", metavar="L0.H1,...", help="only these heads (default: all)")
    p.add_argument("--max-seqs", type=positive, default=200, metavar="N", help="training sequences (200)")
    p.add_argument("--validation-seqs", type=positive, default=40, metavar="N", help="validation sequences (40)")
    p.add_argument("--test-seqs", type=positive, default=40, metavar="N", help="test sequences (40)")
    p.add_argument("--proposer", choices=("search", "openai", "both"), default="search",
                   help="search (offline, the default), openai (an LLM through any OpenAI-compatible server), both")
    p.add_argument("--llm-base-url", metavar="URL", help="OpenAI-compatible server (else $OPENAI_BASE_URL)")
    p.add_argument("--llm-model", metavar="NAME", help="model name (else $HEADCODE_LLM_MODEL or $OPENAI_MODEL)")
    p.add_argument("--llm-api-key", metavar="KEY", help="API key (else $OPENAI_API_KEY)")
    p.add_argument("--llm-timeout", type=positive_seconds, default=60.0, metavar="S",
                   help="seconds one request may take in all (60)")
    p.add_argument("--llm-retries", type=non_negative, default=2, metavar="N",
                   help="follow-up turns after a reply with no valid program (2)")
    p.add_argument("--out", required=True, metavar="LIB", help="the library directory to write")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_quiet(p)
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser("score", help="score a library's programs against a model on any text "
                                            "(default: the library's own test split)")
    p.add_argument("--library", required=True, metavar="LIB")
    add_model(p)
    add_corpus(p, from_library=True)
    add_level(p, "short")
    p.add_argument("--max-seqs", type=positive, default=100, metavar="N", help="sequences scored at most (100)")
    p.add_argument("--force", action="store_true", help="score even if the model's fingerprint differs")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_quiet(p)
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("predict", help="write every library head's predicted matrix for one text (.npz)")
    p.add_argument("--library", required=True, metavar="LIB")
    p.add_argument("--model", metavar="M", help="whose tokenizer to use (default: the library's model)")
    p.add_argument("--text", required=True, metavar="TEXT")
    p.add_argument("--max-len", type=positive, default=512, metavar="L", help="tokens at most (512)")
    add_level(p, "short")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_predict)


def cmd_explain(args) -> int:
    from headcode.cli.summary import explain_report, print_explain_table
    from headcode.library import Library
    from headcode.synth import explain, pipeline

    Library.check_target(args.out)  # before the slow parts
    llm = None
    if args.proposer != explain.Proposer.SEARCH.value:
        from headcode.synth.llm import LLMConfig, default_cache_dir

        llm = LLMConfig.from_env(args.llm_base_url, args.llm_model, args.llm_api_key, cache_dir=default_cache_dir(),
                                 timeout_s=args.llm_timeout, retries=args.llm_retries)
    spec = cut(args, train=args.max_seqs, validation=args.validation_seqs, test=args.test_seqs)
    job = pipeline.Job(model=args.model, split=spec, heads_spec=args.heads,
                       settings=explain.Settings(proposer=explain.Proposer(args.proposer), llm=llm))
    result, lib = pipeline.run(job, progress=not args.quiet)
    lib.save(args.out)
    report = explain_report(result, lib)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_explain_table(report)
        print(f"wrote {args.out}: {report['num_programs']} distinct programs for {len(result.heads)} heads")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _attach(args, reads_corpus: bool = False):
    """The library and its model; with `reads_corpus`, the corpus to read (--corpus, else
    the library's) is checked first."""
    from headcode.library import Library, identity_of
    from headcode.loaders.corpora import check_corpus
    from headcode.loaders.models import load_model

    lib = Library.load(args.library)
    if reads_corpus:
        check_corpus(args.corpus or lib.split["corpus"])  # before the slow model load
    loaded = load_model(args.model or lib.model.name)
    for warning in lib.check_model(identity_of(args.model or lib.model.name, loaded.model, loaded.tokenizer),
                                   force=getattr(args, "force", False)):
        print(f"headcode: warning: {warning}", file=sys.stderr)
    return lib, loaded


def cmd_score(args) -> int:
    from headcode import dsl
    from headcode.library import Level
    from headcode.loaders.corpora import SplitSpec
    from headcode.synth import data
    from headcode.synth.scoring import mean_of, score_candidates

    lib, loaded = _attach(args, reads_corpus=True)
    level = Level(args.level)
    if args.corpus is None:  # the library's own test split, cut as it recorded
        spec = cut(args, base=SplitSpec.from_record(lib.split), train=0, validation=0, test=args.max_seqs)
        split = data.cut(loaded, spec, names=("test",))["test"]
        where = f"the test split of {spec.corpus}"
    else:  # any text: every sequence of it
        spec = cut(args, base=SplitSpec(corpus=args.corpus))
        split = data.Split("all")
        for seq in spec.stream(loaded.tokenizer, loaded.add_special_tokens):
            if len(split) >= args.max_seqs:
                break
            if len(seq.table) >= 2:
                split.tables.append(seq.table)
                split.texts.append(seq.text)
        where = spec.corpus
    if not len(split):
        raise UserError(f"{spec.corpus}: no sequences of at least 2 tokens to score")
    data.record(loaded, split, progress=not args.quiet)
    bos, uniform = dsl.Program.of("bos"), dsl.Program.of("uniform")
    scored = score_candidates(split, {key: {"program": lib.program_of(*key, level), "bos": bos, "uniform": uniform}
                                      for key in lib if level in lib[key].levels}, progress=not args.quiet)
    if not scored:
        raise UserError(f"{args.library}: no head has a {level.value} program")
    mine = {key: s["program"] for key, s in scored.items()}
    report = {
        "level": level.value, "text": where,
        "mean_iou": mean_of(mine, "iou"),
        "mean_iou_all_rows": mean_of(mine, "iou_all_rows"),
        "mean_jsd": mean_of(mine, "jsd"),
        "sequences": len(split), "tokens": split.tokens,
        "heads": [{"layer": l, "head": h, "program": lib.program_of(l, h, level).text, **mine[l, h].as_dict()}
                  for l, h in mine],
        "baselines": {name: mean_of({key: s[name] for key, s in scored.items()}) for name in ("bos", "uniform")},
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{len(mine)} heads ({level.value} programs) on {len(split)} sequences ({split.tokens} tokens) of {where}")
        print(f"mean iou {report['mean_iou']:.3f} (all rows {report['mean_iou_all_rows']:.3f}), "
              f"jsd {report['mean_jsd']:.3f} bits; baselines: bos {report['baselines']['bos']:.3f}, "
              f"uniform {report['baselines']['uniform']:.3f}")
    return 0


def cmd_predict(args) -> int:
    from headcode import fileio
    from headcode.compiler import ProgramBatch
    from headcode.dsl.tokens import TokenTable
    from headcode.library import Level

    if not args.text.strip():
        raise UserError("--text is empty: give a text to predict on")
    fileio.check_writable(args.out, what="predictions")
    lib, loaded = _attach(args)
    table = TokenTable.from_text(loaded.tokenizer, args.text, max_len=args.max_len,
                                 add_special_tokens=loaded.add_special_tokens)
    level = Level(args.level)
    keys = [key for key in lib if level in lib[key].levels]
    if not keys:
        raise UserError(f"{args.library}: no head has a {level.value} program (try --level "
                        f"{'full' if level.value == 'short' else 'short'})")
    matrices = ProgramBatch([lib.program_of(*k, level) for k in keys]).evaluate(table)
    arrays = {f"L{l}.H{h}": matrices[k] for k, (l, h) in enumerate(keys)}
    arrays["input_ids"] = np.asarray(table.ids)
    with fileio.atomic_path(args.out, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    print(f"wrote {args.out}: {len(keys)} heads on {len(table)} tokens")
    return 0
