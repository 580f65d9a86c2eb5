"""What kind of short answer a question asks for: a breakdown for eval reports only.

The answer itself never uses this (the reader decides what answers); `rag eval` groups
its figures by kind so a regression on, say, "how many" questions shows.
"""

from __future__ import annotations

import re

Kind = str  # "number" | "date" | "person" | "place" | "name" | "thing"


def asked_kind(question: str) -> Kind | None:
    """What kind of short answer the question asks for; None for why/how/yes-no/quote questions.

    >>> [asked_kind(q) for q in ("How many died?", "Who won?", "When did it end?",
    ...  "Which country voted?", "What did the president say?", "Why did it fall?",
    ...  "What pathway is present in all eukaryotes?")]
    ['number', 'person', 'date', 'place', None, None, 'thing']
    """
    q = " " + " ".join(question.lower().replace("’", "'").split()) + " "
    # The first wh-word decides: "What did he lie about when applying?" asks for a thing.
    m = _WH.search(q)
    if m is None:
        return None  # yes/no, "true or false", fill-in-the-blank
    wh, tail = m.group(1), q[m.start():]
    if wh == "how":
        if re.match(r"how (many|much|long|far|old|big|large|tall|high|deep|fast|often)\b", tail):
            return "date" if tail.startswith("how long ago") else "number"
        return None
    if wh == "why":
        return None
    if wh == "when":
        return "date"
    if wh == "where":
        return "place"
    if wh in ("who", "whom", "whose"):
        return "person"
    # The asked-for noun: "what (main) percentage", "which (European) country".
    heads = tail.split()[1:3]
    for kind, words in (("number", _NUMBER_HEADS), ("date", _DATE_HEADS),
                        ("place", _PLACE_HEADS), ("person", _PERSON_HEADS)):
        if (heads[:1] and heads[0] in words) or (
                len(heads) > 1 and heads[0] not in _AUX and heads[1] in words):
            return kind
    if re.search(r"\b(name|title)\b|\bcalled\b|\bnamed\b", tail):
        return "name"
    # "What did X say / do / happen / mean": a statement, not a phrase.
    if re.search(r"\b(say|said|says|do|does|did|happen|happened|happens|mean|means|think|"
                 r"want|wants|tell|told|announce|announced|claim|claimed|reveal|"
                 r"revealed)\s*\?*\s*$", tail):
        return None
    return "name" if wh == "which" else "thing"


_AUX = frozenset(["is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could", "the", "a", "an", "of", "in", "on", "to"])
_WH = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how)\b")
_NUMBER_HEADS = frozenset(["number", "percentage", "percent", "proportion", "share", "amount", "fraction", "sum", "price"])
_DATE_HEADS = frozenset(["year", "years", "date", "dates", "day", "days", "month", "months", "decade", "decades", "century", "centuries", "time"])
_PLACE_HEADS = frozenset(["city", "cities", "country", "countries", "state", "states", "region", "town", "place", "nation", "island", "continent", "province", "county", "capital", "area", "village", "location", "river", "sea"])
_PERSON_HEADS = frozenset(["person", "man", "woman", "player", "driver", "leader", "president", "actor", "actress", "singer", "author", "artist", "politician", "official", "golfer", "athlete", "star", "ceo", "minister", "senator", "governor", "king", "queen"])
