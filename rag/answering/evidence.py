"""Retrieval evidence for the refusal: does the answering passage name what the question names?

The reader judges whether a passage answers, given that it is about the question; it is
easily fooled by a passage on the same topic but another event (a question about the 2024
election read against a 2022 story). Most unanswerable news questions name something, a
person, a place, an organisation, a number or a year, that no indexed article mentions, so
the share of the question's names found in the answering passage (and its title) is
evidence the reader lacks. Pure functions.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.-]*[A-Za-z0-9]|[A-Za-z0-9]")
# Capitalised words that start or shape a question rather than name something.
_NOT_NAMES = frozenset(re.findall(r"\S+", """
a an the what which who whom whose when where why how is are was were do does did can could
will would should has have had in on at of for from to by with about after before during
since according as if and or but not no this that these those it its there their his her
true false yes one two three four five six seven eight nine ten mr mrs ms dr gov sen rep
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
"""))


def key_terms(question: str) -> list[str]:
    """The names and numbers a question turns on, lower-cased: capitalised words that are
    not the question's own first word or a function word, and every number.

    >>> key_terms("Who won the 2024 US election in Ohio?")
    ['2024', 'us', 'ohio']
    >>> key_terms("what happened?")
    []
    """
    terms: list[str] = []
    for i, m in enumerate(_WORD.finditer(question)):
        word = m.group().strip(".'’")
        low = word.lower()
        if not word or low in _NOT_NAMES:
            continue
        named = word[0].isupper() and i > 0
        if (named or word[0].isdigit()) and low not in terms:
            terms.append(low)
    return terms


def coverage(question: str, text: str) -> float:
    """The share of the question's key terms that `text` contains as words (1.0 when the
    question names nothing).

    >>> coverage("Who won the 2024 US election?", "In 2022 the US midterms ...")
    0.5
    """
    terms = key_terms(question)
    if not terms:
        return 1.0
    # "U.S." matches "US", and a number matches however its thousands are written
    words = {_bare(w) for w in _WORD.findall(text)}
    return sum(_bare(t) in words for t in terms) / len(terms)


def _bare(word: str) -> str:
    return word.strip(".'’").lower().replace(".", "").replace(",", "")
