"""The closed-class word lexicon behind the `closed` token class.

Function words (determiners, pronouns, prepositions, conjunctions, auxiliaries)
are a small, closed set in English; attention heads often treat them alike. The
list is part of the language's meaning: changing it changes what `closed` selects,
so it is versioned with the DSL.
"""

from __future__ import annotations

CLOSED_CLASS: frozenset[str] = frozenset(
    """
    a an the this that these those some any no every each all both either neither
    i me my mine we us our ours you your yours he him his she her hers it its
    they them their theirs myself yourself himself herself itself ourselves themselves
    who whom whose which what where when why how there here
    and or but nor so yet if then than because while although though unless until
    since as
    of to in on at by for with from into onto upon about above below over under
    between through during before after around near off out up down across along
    behind beside inside outside without within toward towards
    be am is are was were been being do does did done have has had having
    will would shall should can could may might must
    not n't 's 're 've 'll 'd 'm
    """.split()
)


def normalise(surface: str) -> str:
    """The normalised surface form used by word tables and the lexicon.

    Lower case, surrounding white space removed (this also drops the tokenizer
    markers once offsets are mapped back to the text); a token made only of white
    space that holds a line break becomes "\\n", any other blank token "".
    """
    text = surface.strip().lower()
    if not text and "\n" in surface:
        return "\n"
    return text


def text_problem(word: str) -> str | None:
    """Why `word` cannot be a word of the language (None when it can): it must be
    valid Unicode text, which a JSON escape such as "\\ud800" (a lone surrogate) is not;
    such a word could be neither printed to a file nor hashed into a program id."""
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return f"word {word!r:.40} is not valid Unicode text (a lone surrogate)"
    return None
