"""The search space of named patterns: every named pattern over its parameter range.

These are the candidates of the search proposer and of the baselines (best single
named pattern, greedy mixture of up to three). Each is DSL text, parsed like any
other program; patterns that may leave rows empty fall back to `bos`, the way the
paper's programs default to the first token.
"""

from __future__ import annotations

from headcode import dsl
from headcode.dsl.features import TokenClass

CLASSES = tuple(c.value for c in TokenClass if c is not TokenClass.WORD_INITIAL)


def named_texts() -> list[str]:
    texts = ["bos", "self", "uniform", "same_token else bos", "induction else bos", "same_token else self",
             "word_start", "sent_start", "uniform(same_word)", "uniform(same_sent)", "uniform(same_token) else bos"]
    texts += [f"prev({k})" for k in range(1, 9)]
    texts += [f"window({w})" for w in (2, 3, 4, 6, 8, 12, 16, 32)]
    texts += [f"decay({r})" for r in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)]
    texts += [f"last({c}) else bos" for c in CLASSES] + [f"first({c}) else bos" for c in CLASSES]
    texts += [f"uniform(key.{c}) else bos" for c in CLASSES]
    texts += ["uniform(key.pos <= 4)", "key.pos == 1 else bos", "prev(1) else self"]
    return texts


def named_patterns() -> list[dsl.Program]:
    """Distinct programs of the search space (duplicates by meaning removed), in order."""
    return list(dict.fromkeys(map(dsl.Program.of, named_texts())))
