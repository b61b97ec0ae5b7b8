"""`headcode explain` (fit a library), `headcode score` (a library on any text) and
`headcode predict` (a library's matrices for one text, for independent checks)."""

from __future__ import annotations

import json
import sys

import numpy as np

from headcode.cli.options import add_corpus, add_model, add_quiet, positive
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
    p.add_argument("--out", required=True, metavar="LIB", help="the library directory to write")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_quiet(p)
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser("score", help="score a library's programs against a model on any text")
    p.add_argument("--library", required=True, metavar="LIB")
    add_model(p)
    add_corpus(p)
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
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_predict)


def cmd_explain(args) -> int:
    from headcode.library import Library
    from headcode.synth import explain, pipeline

    Library.check_target(args.out)  # before the slow parts
    llm = None
    if args.proposer != "search":
        from headcode.synth.llm import LLMConfig, default_cache_dir

        llm = LLMConfig.from_env(args.llm_base_url, args.llm_model, args.llm_api_key, cache_dir=default_cache_dir())
    job = pipeline.Job(
        model=args.model, corpus=args.corpus, max_len=args.max_len, shape=args.shape,
        one_per_line=args.one_per_line, seed=args.seed, train=args.max_seqs, validation=args.validation_seqs,
        test=args.test_seqs, heads_spec=args.heads, settings=explain.Settings(proposer=args.proposer, llm=llm),
    )
    result, lib = pipeline.run(job, progress=not args.quiet)
    lib.save(args.out)
    report = _report(result, lib)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_table(report)
        print(f"wrote {args.out}: {report['num_programs']} distinct programs for {len(result.heads)} heads")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _report(result, lib) -> dict:
    from headcode import dsl

    shared = sum(1 for h in result.heads if sum(1 for g in result.heads if g.program == h.program) > 1)
    return {
        "mean_iou": result.mean("iou"),
        "mean_iou_all_rows": result.mean("iou_all_rows"),
        "mean_jsd": result.mean("jsd"),
        "baselines": result.baseline_means(),
        "num_programs": len(lib.programs),
        "heads_sharing_a_program": shared,
        "sources": {s: sum(1 for h in result.heads if h.source == s) for s in sorted({h.source for h in result.heads})},
        "stages_s": result.stages,
        "heads": [{"layer": h.layer, "head": h.head, "program": dsl.show(h.program), "source": h.source,
                   "iou": h.test["iou"], "iou_all_rows": h.test["iou_all_rows"], "validation_iou": h.validation["iou"],
                   "baselines": h.baselines} for h in result.heads],
    }


def _print_table(report: dict) -> None:
    print(f"{'head':>7} {'iou':>5} {'bos':>5} {'unif':>5} {'single':>6} {'mix3':>5}  source  program")
    for h in report["heads"]:
        b = h["baselines"]
        program = h["program"] if len(h["program"]) <= 60 else h["program"][:57] + "..."
        print(f"L{h['layer']:>2}.H{h['head']:<2} {h['iou']:5.3f} {b['bos']:5.3f} {b['uniform']:5.3f} "
              f"{b['best_single']:6.3f} {b['greedy_mixture']:5.3f}  {h['source']:<6}  {program}")
    b = report["baselines"]
    print(f"{'mean':>7} {report['mean_iou']:5.3f} {b['bos']:5.3f} {b['uniform']:5.3f} {b['best_single']:6.3f} "
          f"{b['greedy_mixture']:5.3f}   (iou over rows 1..n-1 on the test split; all rows: "
          f"{report['mean_iou_all_rows']:.3f})")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["stages_s"].items()))


def _attach(args):
    from headcode.library import Library, identity_of
    from headcode.loaders.models import load_model

    lib = Library.load(args.library)
    loaded = load_model(args.model or lib.model.name)
    for warning in lib.check_model(identity_of(args.model or lib.model.name, loaded.model, loaded.tokenizer),
                                   force=getattr(args, "force", False)):
        print(f"headcode: warning: {warning}", file=sys.stderr)
    return lib, loaded


def cmd_score(args) -> int:
    from headcode import dsl
    from headcode.loaders.corpora import open_corpus, sequences
    from headcode.synth import data
    from headcode.synth.evaluate import mean_of, score_candidates

    lib, loaded = _attach(args)
    corpus = open_corpus(args.corpus)
    stream = sequences(corpus, loaded.tokenizer, args.max_len, add_special_tokens=loaded.add_special_tokens,
                       one_per_line=args.one_per_line, seed=args.seed, shape=args.shape)
    split = data.Split("all")
    for seq in stream:
        if len(split) >= args.max_seqs:
            break
        if len(seq.table) >= 2:
            split.tables.append(seq.table)
            split.texts.append(seq.text)
    if not len(split):
        raise UserError(f"{corpus.name}: no sequences of at least 2 tokens to score")
    data.capture(loaded, split, progress=not args.quiet)
    bos, uniform = dsl.parse("bos"), dsl.parse("uniform")
    heads = {key: [lib.program_of(*key), bos, uniform] for key in lib}
    scored = score_candidates(split, heads, progress=not args.quiet)
    report = {
        "mean_iou": mean_of(scored[0], "iou"),
        "mean_iou_all_rows": mean_of(scored[0], "iou_all_rows"),
        "mean_jsd": mean_of(scored[0], "jsd"),
        "sequences": len(split), "tokens": split.tokens,
        "heads": [{"layer": l, "head": h, "program": lib.program_text(lib[l, h].program), **scored[0][l, h]}
                  for l, h in lib],
        "baselines": {"bos": mean_of(scored[1]), "uniform": mean_of(scored[2])},
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{len(lib)} heads on {len(split)} sequences ({split.tokens} tokens) of {corpus.name}")
        print(f"mean iou {report['mean_iou']:.3f} (all rows {report['mean_iou_all_rows']:.3f}), "
              f"jsd {report['mean_jsd']:.3f} bits; baselines: bos {report['baselines']['bos']:.3f}, "
              f"uniform {report['baselines']['uniform']:.3f}")
    return 0


def cmd_predict(args) -> int:
    from headcode import fileio
    from headcode.compiler import ProgramBatch, TokenTable

    lib, loaded = _attach(args)
    if not args.text.strip():
        raise UserError("--text is empty: give a text to predict on")
    table = TokenTable.from_text(loaded.tokenizer, args.text, max_len=args.max_len,
                                 add_special_tokens=loaded.add_special_tokens)
    keys = list(lib)
    matrices = ProgramBatch([lib.program_of(*k) for k in keys]).evaluate(table)
    arrays = {f"L{l}.H{h}": matrices[k] for k, (l, h) in enumerate(keys)}
    arrays["input_ids"] = np.asarray(table.ids)
    with fileio.atomic_path(args.out, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    print(f"wrote {args.out}: {len(keys)} heads on {len(table)} tokens")
    return 0
