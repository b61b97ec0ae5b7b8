"""Multiple-choice question sets for `headcode replace --qa`.

  builtin   32 short questions in the TinyStories world, written for headcode and
            shipped in headcode/replace/data/qa.json (always available);
  arc-easy  allenai/ai2_arc ARC-Easy (test split);
  piqa      ybisk/piqa (validation split; two solutions per goal);
  sciq      allenai/sciq (test split; the right answer and three distractors).

The public sets come through the optional `datasets` package; when it is missing
or the hub cannot be reached, `load` raises `Unavailable` with a one-line reason
and the command reports the set as skipped instead of failing.
"""

from __future__ import annotations

import json
from importlib import resources

from headcode.errors import UserError
from headcode.replace.measure import Question

NAMES = ("builtin", "arc-easy", "piqa", "sciq")


class Unavailable(Exception):
    """A question set that cannot be loaded here (one-line reason)."""


def load(name: str, limit: int | None = None) -> list[Question]:
    """The questions of set `name`; of a public set at most `limit` (the first ones).
    The built-in set is always whole, so its figures compare across runs."""
    if name not in NAMES:
        raise UserError(f"unknown QA set {name!r}; use one of {', '.join(NAMES)}")
    if name == "builtin":
        return builtin()
    questions = _hub(name, limit)
    return questions[:limit] if limit else questions


def builtin() -> list[Question]:
    raw = json.loads(resources.files("headcode.replace").joinpath("data", "qa.json").read_text("utf-8"))
    return [Question(f"{q['context']}\nQuestion: {q['question']}\nAnswer:", tuple(q["choices"]), int(q["answer"]))
            for q in raw["questions"]]


def _hub(name: str, limit: int | None) -> list[Question]:
    try:
        import datasets
    except ImportError:
        raise Unavailable("needs the optional package datasets (pip install 'headcode[hub]')") from None
    where = {"arc-easy": ("allenai/ai2_arc", "ARC-Easy", "test"), "piqa": ("ybisk/piqa", None, "validation"),
             "sciq": ("allenai/sciq", None, "test")}[name]
    split = where[2] if not limit else f"{where[2]}[:{limit}]"
    try:
        rows = datasets.load_dataset(where[0], where[1], split=split)
    except Exception as err:  # network, missing repo, old script datasets: all mean "not here"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise Unavailable(f"cannot load {where[0]}: {first[:160]}") from None
    return [_convert(name, row) for row in rows]


def _convert(name: str, row: dict) -> Question:
    if name == "arc-easy":
        labels = list(row["choices"]["label"])
        return Question(f"Question: {row['question']}\nAnswer:", tuple(row["choices"]["text"]),
                        labels.index(row["answerKey"]))
    if name == "piqa":
        return Question(f"Question: {row['goal']}\nAnswer:", (row["sol1"], row["sol2"]), int(row["label"]))
    # The right answer goes to a position fixed by the question, not always first
    # (argmax keeps the first of equal scores).
    at = len(row["question"]) % 4
    choices = [row["distractor1"], row["distractor2"], row["distractor3"]]
    choices.insert(at, row["correct_answer"])
    context = f"{row['support'].strip()}\n" if row.get("support") else ""
    return Question(f"{context}Question: {row['question']}\nAnswer:", tuple(choices), at)
