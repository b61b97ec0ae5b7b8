"""What the LLM proposer says to the model, and how it reads the answer.

Everything here is pure text handling, so it is tested without a server:
`build_messages` renders the language reference and one head's summary into chat
messages; `extract_candidates` pulls candidate program texts out of a reply;
`read_reply` parses and checks them with the DSL (the only thing a reply is ever
used for: nothing in it is evaluated or executed); `feedback` words the checker's
messages as the follow-up turn when a reply held no valid program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from headcode import dsl
from headcode.dsl import terminals
from headcode.dsl.features import Distance, Feature, TokenClass
from headcode.dsl.sugar import PATTERNS, SELECTORS


@dataclass(frozen=True)
class HeadSummary:
    """What the model is told about one attention head (built from a capture)."""

    layer: int
    head: int
    profile: dict[str, float]  # e.g. entropy, first_mass, prev_mass, self_mass, same_token_mass, punct_mass
    top_pairs: tuple[tuple[str, str, float], ...]  # (query text, key text, mean weight), strongest first
    examples: tuple[str, ...] = ()  # short rendered rows, e.g. "query 'dog' -> 'The'(0.41) 'big'(0.22)"


# Worked examples shown in the prompt. tests/test_llm.py checks that each parses, so
# the prompt never teaches the model something the checker rejects.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("0.7*prev(1) + 0.3*bos", "mostly the previous token, some weight on the first token"),
    ("last(punct) else bos", "the latest punctuation token, else the first token"),
    ("softmax(4.0*bos + 1.2*key.punct - 0.7*log_dist + 2.0*same_token)",
     "a first-token sink, bonuses for punctuation and earlier copies of the query token, recency"),
    ("softmax(3*bos + key.word{the: 1.2, and: 0.9})", "a sink plus a table of preferred key words"),
    ("0.5*(last(quote) else bos) + 0.5*self", "parentheses group a fallback inside a mixture"),
)

# The enums carry their meaning in source comments only; these lines say it to the model.
# Any member missing here is still listed (by name), so the prompt cannot fall behind.
_CLASS_DOCS = {
    TokenClass.PUNCT: "only punctuation or symbol characters",
    TokenClass.COMMA: "contains ','",
    TokenClass.SENT_END: "contains '.', '!' or '?'",
    TokenClass.QUOTE: "contains a quotation mark",
    TokenClass.NEWLINE: "contains a line break",
    TokenClass.CAP: "first letter is upper case",
    TokenClass.DIGIT: "contains a digit",
    TokenClass.CLOSED: "a closed-class (function) word: the, a, and, she, of, was, ...",
    TokenClass.WORD_INITIAL: "the first piece of a word",
}
_FEATURE_DOCS = {
    Feature.POS: "position 0..n-1 (ordinal)",
    Feature.WORD: "index of the token's word (ordinal)",
    Feature.SENT: "index of the token's sentence (ordinal)",
    Feature.TOK: "token id (compare only with == / != against tok or prev_tok)",
    Feature.PREV_TOK: "id of the previous token (-1 at position 0)",
}
_DISTANCE_DOCS = {Distance.DIST: "query.pos - key.pos", Distance.LOG_DIST: "log(1 + query.pos - key.pos)"}

MAX_CANDIDATE_CHARS = 2000  # longer "programs" are prose or junk; parsing them is wasted work
MAX_FEEDBACK_CHARS = 4000  # keep the follow-up turn short even for very bad replies


def grammar_text() -> str:
    return resources.files("headcode.dsl").joinpath("grammar.lark").read_text(encoding="utf-8")


def language_reference() -> str:
    """The system prompt: the task, the grammar, the vocabulary and examples."""
    lines = [
        "You write attention programs in a small DSL. A program maps a token sequence to an",
        "attention matrix: for each query token, a probability distribution over the keys at",
        "or before it. Programs are parsed and checked, never executed: write DSL text only,",
        "no Python, no explanations inside code blocks.",
        "",
        "Grammar (Lark):",
        "```",
        grammar_text().strip(),
        "```",
        "",
        "Named conditions (selectors):",
        *(f"- {n.usage()}: {n.doc}" for n in SELECTORS.values()),
        "",
        "Named patterns:",
        *(f"- {n.usage()}: {n.doc}" for n in PATTERNS.values()),
        "",
        "Token features, read as key.F or query.F:",
        *(f"- {f.value}: {_FEATURE_DOCS.get(f, f.value)}" for f in Feature),
        "",
        "Token classes, conditions written key.C or query.C:",
        *(f"- {c.value}: {_CLASS_DOCS.get(c, c.value)}" for c in TokenClass),
        "",
        "Other forms:",
        "- comparisons: key.pos == query.pos - 2, key.sent == query.sent, key.pos <= 3",
        "- combinations: key.punct and not key.comma, a or b",
        "- word sets: key.word{the, and, \",\"} (condition); word tables key.word{the: 1.2} only inside softmax",
        "- P else Q: Q on rows where P selects nothing",
        "- w1*P1 + w2*P2: mixture, weights >= 0, renormalised per row",
        "- softmax(sum of weight*factor terms): factors are conditions, word tables, "
        + ", ".join(f"{d.value} ({doc})" for d, doc in _DISTANCE_DOCS.items()),
        "",
        "Examples:",
        *(f"- `{text}`: {why}" for text, why in EXAMPLES),
    ]
    return "\n".join(lines)


def describe_head(summary: HeadSummary, n: int) -> str:
    """The user turn: one head's measured behaviour and the request for n programs."""
    lines = [f"Attention head: layer {summary.layer}, head {summary.head}.", "", "Profile (mean over query rows):"]
    lines += [f"- {name}: {value:.3f}" for name, value in summary.profile.items()]
    if summary.top_pairs:
        lines += ["", "Strongest (query token -> key token, mean weight):"]
        lines += [f"- {q!r} -> {k!r}: {w:.3f}" for q, k, w in summary.top_pairs[:20]]
    if summary.examples:
        lines += ["", "Example rows:", *(f"- {row}" for row in summary.examples)]
    lines += [
        "",
        f"Write {n} different candidate programs that reproduce this head's attention,",
        "from simple to more detailed. Put each program in its own fenced code block (```).",
    ]
    return "\n".join(lines)


def build_messages(summary: HeadSummary, n: int) -> list[dict]:
    """System and user messages in the chat-completions format."""
    return [
        {"role": "system", "content": language_reference()},
        {"role": "user", "content": describe_head(summary, n)},
    ]


# --- reading replies -----------------------------------------------------------------

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
# Program names, names, quoted words and numbers are the grammar's terminals (grammar.lark).
# `name = expr` (the file syntax) -> expr; the look-ahead keeps `key.pos == ...` intact.
_ASSIGN = re.compile(rf"^\s*{terminals.DEFNAME}\s*=(?!=)\s*")
_IDENT = re.compile(terminals.NAME)
_BRACES = re.compile(r"\{[^{}]*\}")
_STRING = re.compile(terminals.STRING)
_NUMBER = re.compile(terminals.NUMBER)
# Every identifier a program may contain outside word tables. A prose line uses
# other words, which is how the fallback tells code lines from sentences.
_VOCABULARY = frozenset(
    {*SELECTORS, *PATTERNS, *(f.value for f in Feature), *(c.value for c in TokenClass),
     *(d.value for d in Distance), "key", "query", "word", "else", "or", "and", "not", "true", "false"}
)


def _strip(text: str) -> str:
    """One candidate's text without a `name = ` prefix, list bullets or inline backticks."""
    text = re.sub(r"^\s*(?:[-*]|\d+[.)])\s+", "", text)  # "- prog" / "1. prog"
    text = text.strip().strip("`").strip()
    return _ASSIGN.sub("", text, count=1).strip()


def _looks_like_program(line: str) -> bool:
    bare = _NUMBER.sub("", _STRING.sub("", _BRACES.sub("", line)))
    words = _IDENT.findall(bare)
    return bool(words) and all(w in _VOCABULARY for w in words)


def _parses(text: str) -> bool:
    try:
        dsl.read(text)
    except dsl.DslError:
        return False
    return True


def extract_candidates(reply: str) -> list[str]:
    """Candidate program texts in a reply: fenced blocks, else program-looking lines."""
    blocks = [b for b in _FENCE.findall(reply) if b.strip()]
    if blocks:
        out = []
        for block in blocks:
            code = [ln for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
            # One program per line is common too. Split a block whose lines are each
            # a definition, or each a program while the whole is not one; keep
            # anything else (a long program wrapped over lines) whole for the parser.
            lines = [_strip(ln) for ln in code]
            whole = _strip(block)
            if len(code) > 1 and (all(_ASSIGN.match(ln) for ln in code)
                                  or (not _parses(whole) and all(map(_parses, lines)))):
                out += lines
            else:
                out.append(whole)
        return [c for c in out if c]
    lines = (_strip(ln) for ln in reply.splitlines())
    return [ln for ln in lines if ln and _looks_like_program(ln)]


@dataclass
class Reading:
    """The outcome of reading one reply."""

    programs: list[dsl.Program] = field(default_factory=list)  # in reply order
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (text, reason)
    errors: list[str] = field(default_factory=list)  # rendered checker messages, for feedback


def read_reply(reply: str, limit: int) -> Reading:
    """Parse and check at most `limit` candidates of a reply with the DSL."""
    reading = Reading()
    for index, text in enumerate(extract_candidates(reply)[:limit], start=1):
        if len(text) > MAX_CANDIDATE_CHARS:
            reading.rejected.append((text[:200], f"longer than {MAX_CANDIDATE_CHARS} characters"))
            continue
        try:
            program = dsl.Program.of(text)
        except dsl.DslError as err:
            err = err.with_filename(f"candidate{index}")
            reading.rejected.append((text, str(err)))
            reading.errors.append(err.render())
            continue
        reading.programs.append(program)
    return reading


def feedback(reading: Reading, n: int) -> str:
    """The follow-up user turn after a reply with no valid program."""
    if reading.errors:
        body = "None of those programs is valid. The checker said:\n\n" + "\n\n".join(reading.errors)
        if len(body) > MAX_FEEDBACK_CHARS:
            body = body[:MAX_FEEDBACK_CHARS] + "\n..."
    else:
        body = "I found no program in your reply."
    return (f"{body}\n\nWrite {n} corrected programs in the DSL, each in its own fenced code block (```), "
            "with no other text inside the blocks.")
