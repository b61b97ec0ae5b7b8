"""Command-line options shared by the commands that read a model, a corpus or a level."""

from __future__ import annotations

import argparse
import dataclasses

_CUT = ("corpus", "shape", "max_len", "one_per_line", "seed")  # the SplitSpec fields set by add_corpus


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive(text: str) -> int:
    return _whole(text, 1)


def non_negative(text: str) -> int:
    return _whole(text, 0)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, got {text}")
    return value


def add_model(p: argparse.ArgumentParser, required: bool = False, or_library: bool = False) -> None:
    """--model; with `or_library` it defaults to None, which the command reads as the
    model a given library names (else the embedded one)."""
    from headcode.loaders.models import EMBEDDED, GEMMA

    default = f"the library's model; else {EMBEDDED}" if or_library else EMBEDDED
    p.add_argument("--model", default=None if required or or_library else EMBEDDED, required=required, metavar="M",
                   help=f"registered name ({EMBEDDED} or {GEMMA}, which comes under the Gemma Terms of Use), "
                        f"local path or Hugging Face name (default: {default})")


def add_corpus(p: argparse.ArgumentParser, max_len: int = 128, from_library: bool = False) -> None:
    """The options of a corpus cut (`loaders.corpora.SplitSpec`). With `from_library`,
    each defaults to what the library records (`cut(args, base=...)`)."""
    from headcode.loaders.corpora import DEFAULT, SHAPES

    def default(value, text: str) -> tuple:
        return (None, "the library's") if from_library else (value, text)

    corpus, corpus_text = default(DEFAULT, f"'{DEFAULT}', the shipped stories")
    p.add_argument("--corpus", default=corpus, metavar="C",
                   help=f"the shipped stories ('{DEFAULT}'), a UTF-8 text file, or hf:NAME[:SPLIT] "
                        f"(default: {corpus_text})")
    p.add_argument("--one-per-line", action="store_const", const=True, default=None if from_library else False,
                   help="each non-empty line is one sequence, verbatim, truncated to --max-len tokens")
    length, length_text = default(max_len, str(max_len))
    p.add_argument("--max-len", type=positive, default=length, metavar="L",
                   help=f"tokens per sequence at most (default: {length_text})")
    shape, shape_text = default("packed", "packed")
    p.add_argument("--shape", choices=tuple(SHAPES), default=shape,
                   help="packed: whole sentences up to --max-len; paragraphs: each paragraph, truncated; "
                        f"windows: consecutive paragraphs cut at exactly --max-len tokens (default: {shape_text})")
    seed, seed_text = default(0, "0")
    p.add_argument("--seed", type=int, default=seed,
                   help=f"seed of the train/validation/test assignment (default: {seed_text})")


def cut(args, base=None, **counts):
    """The SplitSpec the options ask for: over `base` (a library's recorded cut) where
    an option was not given, with `counts` (train=, validation=, test=) set."""
    from headcode.loaders.corpora import SplitSpec

    given = {k: getattr(args, k) for k in _CUT if getattr(args, k) is not None}
    return dataclasses.replace(base or SplitSpec(), **given, **counts)


def add_level(p: argparse.ArgumentParser, default: str) -> None:
    from headcode.library import Level

    p.add_argument("--level", choices=[level.value for level in Level], default=default,
                   help=f"which of each head's programs: short (the one people read) or full (the most "
                        f"faithful) (default: {default})")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _executor(text: str):
    from headcode.executor import parse_executor

    try:
        return parse_executor(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_executor(p: argparse.ArgumentParser, what: str) -> None:
    """--executor and --device (`headcode.executor`); `executor(args)` reads them."""
    p.add_argument("--executor", type=_executor, default="local", metavar="WHERE",
                   help=f"where {what} runs: local (this process, the fits on a thread per core; the default), local:N "
                        "(N threads), ray (a local Ray instance, started "
                        "or joined) or ray:ADDRESS (a Ray cluster, e.g. ray:auto); needs pip install 'headcode[ray]'")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="with --executor ray: cuda gives each worker one GPU for the model (untested) (default: cpu)")


def executor(args):
    """The executor `--executor` and `--device` ask for (a context manager; Ray is
    reached now, so a missing package or an unreachable cluster fails before slow work)."""
    from headcode.executor import Device, start

    return start(dataclasses.replace(args.executor, device=Device(args.device)))
