"""Command-line options shared by the commands that read a model and a corpus."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model(p: argparse.ArgumentParser, required: bool = False) -> None:
    from headcode.loaders.models import EMBEDDED

    p.add_argument("--model", default=None if required else EMBEDDED, required=required, metavar="M",
                   help=f"registered name ({EMBEDDED}, the default), local path or Hugging Face name")


def add_corpus(p: argparse.ArgumentParser, max_len: int = 128) -> None:
    from headcode.loaders.corpora import DEFAULT

    p.add_argument("--corpus", default=DEFAULT, metavar="C",
                   help=f"'{DEFAULT}' (the shipped stories, the default), a UTF-8 text file, or hf:NAME[:SPLIT]")
    p.add_argument("--one-per-line", action="store_true",
                   help="each non-empty line is one sequence, verbatim, truncated to --max-len tokens")
    p.add_argument("--max-len", type=positive, default=max_len, metavar="L",
                   help=f"tokens per sequence at most ({max_len})")
    p.add_argument("--shape", choices=("packed", "paragraphs", "windows"), default="packed",
                   help="packed: whole sentences up to --max-len (default); paragraphs: each paragraph, "
                        "truncated; windows: consecutive paragraphs cut at exactly --max-len tokens")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation/test assignment (0)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")
