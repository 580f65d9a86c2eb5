"""The short answer: the exact phrase of a cited sentence that answers a "thing" question.

No trained reader: the question's wh-word says what kind of thing is asked for (a number,
a date, a person, a place, a name, a thing), the sentence offers candidate spans of each
kind (numbers with their units, dates, capitalised name runs, plain noun phrases), and a
span scores by whether its kind fits, how close it sits to the question's own words in
the sentence, and whether it says something the question does not already say.

    >>> s = "Russia said two missiles were intercepted by its air defences on Monday."
    >>> best_span("How many missiles were intercepted?", s)
    (12, 15, 'two')
    >>> best_span("Why were they intercepted?", s) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.index.lexical import stemmer

Kind = str  # "number" | "date" | "person" | "place" | "name" | "thing"

_NUM_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
              "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
              "sixty|seventy|eighty|ninety|hundred|a dozen|dozens|hundreds|thousands|millions|"
              "half")
_SCALE = r"(?:\s(?:hundred|thousand|million|billion|trillion|bn)\b)?"
_UNIT = (r"(?:\s?(?:%|percent|per cent)|\s(?:euros?|dollars?|pounds?|yen|yuan|rupees?|"
         r"francs?|pesos?|cents?|pence|points?|degrees?|miles?|kilometres?|kilometers?|km|"
         r"metres?|meters?|feet|foot|years?|months?|weeks?|days?|hours?|minutes?|tons?|"
         r"tonnes?|acres?|kg)\b)?")
_NUMBER = re.compile(
    rf"(?:[$£€¥]\s?)?\b\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th|s)?{_SCALE}{_UNIT}"
    rf"|\b(?:{_NUM_WORDS})\b(?:[- ](?:{_NUM_WORDS}))?{_SCALE}{_UNIT}", re.IGNORECASE)
_MONTH = ("January|February|March|April|May|June|July|August|September|October|November|"
          "December|Jan\\.?|Feb\\.?|Mar\\.?|Apr\\.?|Jun\\.?|Jul\\.?|Aug\\.?|Sept?\\.?|Oct\\.?|"
          "Nov\\.?|Dec\\.?")
_DAY = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    rf"\b(?:(?:{_MONTH})\s\d{{1,2}}(?:st|nd|rd|th)?(?:\s(?:and|-|to)\s\d{{1,2}}(?!\d))?"
    rf"(?:,?\s(?:1[0-9]|20)\d\d)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?(?:{_MONTH})(?:,?\s(?:1[0-9]|20)\d\d)?"
    rf"|(?:{_MONTH})\s(?:1[0-9]|20)\d\d"
    rf"|(?:early|mid|late)?[- ]?(?:1[0-9]|20)\d\d(?:s)?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)\scentury"
    rf"|\d{{1,2}}:\d\d(?:\s?[ap]\.?m\.?)?(?:\s[A-Z]{{2,4}}\b)?"
    rf"|(?:{_DAY})"
    rf"|(?:[Ll]ast|[Tt]his|[Nn]ext) (?:week|month|year|night|weekend|spring|summer|autumn|"
    rf"winter)|[Yy]esterday|(?:{_MONTH}))\b")
_CALENDAR = re.compile(rf"^(?:{_MONTH}|{_DAY})$")
# A capitalised run: "Air New Zealand", "Bank of England"; "of/de/and" join capitals.
_CAP_TOKEN = r"(?:[A-Z][\w'’.&-]*|[A-Z]{2,}|\d+[A-Z]\w*)"
_NAME = re.compile(rf"{_CAP_TOKEN}(?:\s(?:(?:of|de|del|da|la|le|von|van|al|bin|the|and|&)\s)?"
                   rf"{_CAP_TOKEN})*")
_WORD = re.compile(r"[\w][\w'’-]*")

_STOP_WORDS = """a an the and or but if of at by for with about against between into through
during before after above below to from up down in out on off over under again further then
once here there when where why how all any both each few more most other some such no nor not
only own same so than too very can will just should now is are was were be been being have has
had having do does did doing would could might must shall may it its it's this that these those
i me my we our you your he him his she her they them their what which who whom whose as also
said says say told according while because until against among within without last first new
s t one year years across around toward towards via per upon among along behind beyond
despite onto throughout like near whether even yet still already however thus many much
several another thought including instead rather although though conversely moreover
furthermore therefore hence thus meanwhile nevertheless whereas"""
_STOP = frozenset(_STOP_WORDS.split())
# Sentence-initial words that are capitalised only by position.
_CAPS_BY_POSITION = """The A An In On At By For From To And But Or If When While After
Before As Its It This That These Those He She They We I His Her Their Our There Here What Which
Who Why How Yet So Still Also However Meanwhile According Last Earlier Later Since Under Over
During Although Though Despite Many Some Most One Two Three Mr Mrs Ms Dr"""
_FUNCTION_CAPS = frozenset(_CAPS_BY_POSITION.split())
# Lowercase words at the edge of a noun-phrase candidate that make it a clause, not a
# thing: common verbs, and -ed/-ing forms (trimmed off the candidate's ends).
_VERB_WORDS = """struck hit hits fired fire said says came come comes went go goes made make makes took take takes gave give gives
got get gets put puts set sets became become becomes began begin begins used use uses called
known seen held hold holds led lead leads left leave leaves found find finds brought bring
told think thinks want wants seem seems show shows"""
_VERBS = frozenset(_VERB_WORDS.split())
_VERBISH = re.compile(r"^[a-z]+(?:ed|ing)$")
# Capitalised runs that name an organisation or a thing, not a person.
_ORG_WORDS = """Ministry Service System Agency Army Force Forces Council Court Party Union
Company Corporation Bank Office Department Committee Commission University Group Association
Government Parliament Congress Senate House Church Police Office News Times Post Network
Telegram Institute Foundation Fund Organization Organisation League Club Airlines Airways"""
_ORG = frozenset(_ORG_WORDS.split())
_TITLE_WORDS = """President Prime Minister Foreign Defence Defense Secretary Chancellor King Queen
Prince Princess Pope Gov Gov. Governor Sen Sen. Senator Rep Rep. Representative General Gen.
Judge Justice Dr Dr. Mr Mr. Mrs Mrs. Ms Ms. Mayor Chief Executive CEO Director Coach Captain
Vice Former Speaker Leader Commander Spokesperson Spokesman Spokeswoman Ambassador Lord Sir
Dame Saint St. Officer Inspector Professor Prof. Bishop Archbishop Cardinal Sheikh Emir"""
_TITLES = frozenset(_TITLE_WORDS.split())
_NATIONALITY = re.compile(r"^[A-Z][a-z]+(?:ian|ean|an|ese|ish|i|ic)(?:'s|’s)?$")
_PLACE_PREP = re.compile(r"\b(in|at|from|to|near|into|across|outside|inside)\s$", re.IGNORECASE)

# Weights of a span's score, chosen on the fitting half of SQuAD2-500 (eval/squad_fit_ids.txt)
# given the sentence that holds the answer: token F1 0.337 -> 0.364 from W_LEN 0.05 -> 0.4, the
# other weights flat within 0.01 over a 4x3x3x2 grid. Kind fit dominates.
W_KIND, W_NEAR, W_NEW, W_LEN = 1.0, 1.0, 0.5, 0.4
NEAR_WINDOW = 12  # words: a span farther than this from every question word gets no closeness
MAX_NP_WORDS = 5


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    kind: str  # "number" | "date" | "name" | "np"
    score: float
    near: float = 0.0  # closeness to the question's words in the sentence (0: none near)


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


def _stems(words: Sequence[str]) -> list[str]:
    return [str(s) for s in stemmer().stemWords([w.lower() for w in words])]


def _question_stems(question: str) -> set[str]:
    words = [w for w in _WORD.findall(question) if w.lower() not in _STOP]
    return set(_stems(words))


def _candidates(sentence: str, kind: Kind) -> list[tuple[int, int, str]]:
    """(start, end, span kind) of every candidate span of the sentence."""
    out: list[tuple[int, int, str]] = []
    for m in _NUMBER.finditer(sentence):
        out.append((m.start(), m.end(), "number"))
    for m in _DATE.finditer(sentence):
        out.append((m.start(), m.end(), "date"))
    for m in _NAME.finditer(sentence):
        a, b = m.start(), m.end()
        words = list(_WORD.finditer(sentence, a, b))
        while words and words[0].group() in _FUNCTION_CAPS:
            words = words[1:]
        if all(_CALENDAR.match(w.group()) for w in words):
            continue  # "November", "Tuesday": a date, not a name
        if words:
            out.append((words[0].start(), words[-1].end(), "name"))
        # "Russian President Vladimir Putin" also offers "Vladimir Putin".
        k = 0
        while k < len(words) - 1 and (words[k].group() in _TITLES
                                      or _NATIONALITY.match(words[k].group())):
            k += 1
        if 0 < k < len(words):
            out.append((words[k].start(), words[-1].end(), "name"))
    if kind in ("thing", "name", "place", "person"):
        run: list[re.Match[str]] = []
        matches: list[re.Match[str] | None] = [*_WORD.finditer(sentence), None]
        for w in matches:
            gap = bool(w is not None and run
                       and sentence[run[-1].end():w.start()].strip() != "")
            if w is None or w.group().lower() in _STOP or gap:
                if run:
                    for i in range(len(run)):
                        if len(run) - i <= MAX_NP_WORDS:
                            out.append((run[i].start(), run[-1].end(), "np"))
                            break
                run = [] if w is None or w.group().lower() in _STOP else [w]
            else:
                run.append(w)
    return out


# What a "how much ... cost" / "what percentage" / "how long" answer must carry.
_MONEY_Q = re.compile(r"\bhow much\b.*\b(cost|costs|pay|paid|pays|worth|spend|spent|price|"
                      r"raise|raised|earn|earned|charge|fund|funding|money|fine|fined|sell|"
                      r"sold|budget|invest|invested)\b|\bhow much money\b|\bwhat (price|sum)\b")
_MONEY = re.compile(r"[$£€¥]|\b(euros?|dollars?|pounds?|yen|yuan|rupees?|francs?|pesos?|"
                    r"cents?|pence|bn)\b", re.IGNORECASE)
_PERCENT_Q = re.compile(r"\b(percentage|percent|per cent)\b")
_PERCENT = re.compile(r"%|\bper ?cent\b", re.IGNORECASE)
_DURATION_Q = re.compile(r"\bhow long\b")
_DURATION = re.compile(r"\b(years?|months?|weeks?|days?|hours?|minutes?|decades?|"
                       r"centur(y|ies))\b", re.IGNORECASE)


def _unit_fit(question: str, span: str) -> float:
    """1.0 when a number span carries the unit the question needs (money, percent, time)."""
    q = question.lower()
    for asks, has in ((_MONEY_Q, _MONEY), (_PERCENT_Q, _PERCENT), (_DURATION_Q, _DURATION)):
        if asks.search(q):
            return 1.0 if has.search(span) else 0.3
    return 1.0


def _fit(kind: Kind, span_kind: str, sentence: str, start: int, end: int,
         question: str = "") -> float:
    if kind == "number":
        if span_kind != "number":
            return 0.0
        return _unit_fit(question, sentence[start:end]) if question else 1.0
    if kind == "date":
        return 1.0 if span_kind == "date" else 0.0
    if kind == "place":
        if span_kind != "name":
            return 0.0
        return 1.0 if _PLACE_PREP.search(sentence[max(0, start - 12):start]) else 0.7
    if kind == "person":
        if span_kind != "name":
            return 0.0
        words = sentence[start:end].split()
        if any(w.strip("'’s") in _ORG for w in words) or len(words) > 4:
            return 0.6
        return 0.8 if words[0] in _TITLES or _NATIONALITY.match(words[0]) else 1.0
    if kind == "name":
        return {"name": 1.0, "np": 0.3}.get(span_kind, 0.0)
    return {"name": 0.8, "np": 0.8, "number": 0.4, "date": 0.4}.get(span_kind, 0.0)


def _trim(sentence: str, a: int, b: int, qstems: set[str], span_kind: str) -> tuple[int, int]:
    """Drop words the question already says from a candidate's ends ("RNA interference
    pathway" for "What pathway...?" -> "RNA interference"), and verbs from a noun phrase's."""
    words = list(_WORD.finditer(sentence, a, b))

    def drop(w: re.Match[str]) -> bool:
        t = w.group()
        low = t.lower().rstrip("'’s") if t[:1].isupper() else t.lower()
        if _stems([low])[0] in qstems or low in _STOP:
            return True
        return span_kind == "np" and (low in _VERBS or bool(_VERBISH.match(t)))

    while words and drop(words[0]):
        words.pop(0)
    while words and drop(words[-1]):
        words.pop()
    return (words[0].start(), words[-1].end()) if words else (a, a)


def score_spans(question: str, sentence: str) -> list[Span]:
    """The sentence's candidate spans for the question's asked kind, best first."""
    kind = asked_kind(question)
    if kind is None:
        return []
    qstems = _question_stems(question)
    words = list(_WORD.finditer(sentence))
    stems = _stems([w.group() for w in words])
    anchors = [i for i, s in enumerate(stems) if s in qstems and words[i].group().lower() not in _STOP]
    out: list[Span] = []
    seen: set[tuple[int, int]] = set()
    for a, b, span_kind in _candidates(sentence, kind):
        if span_kind in ("name", "np"):
            a, b = _trim(sentence, a, b, qstems, span_kind)
        text = sentence[a:b].strip(" ,;:")
        b = a + len(sentence[a:b].rstrip(" ,;:"))
        if not text or (a, b) in seen:
            continue
        seen.add((a, b))
        fit = _fit(kind, span_kind, sentence, a, b, question)
        if fit <= 0:
            continue
        inside = [i for i, w in enumerate(words) if w.start() >= a and w.end() <= b]
        content = [i for i in inside if words[i].group().lower() not in _STOP]
        if not content and span_kind in ("name", "np"):
            continue
        old = sum(stems[i] in qstems for i in content) / len(content) if content else 0.0
        if old >= 1.0:
            continue  # says only what the question says
        outside = [i for i in anchors if i not in inside]
        if outside and inside:
            d = min(min(abs(i - j) for j in inside) for i in outside)
            near = max(0.0, 1.0 - (d - 1) / NEAR_WINDOW)
        else:
            near = 0.0
        score = (W_KIND * fit + W_NEAR * near + W_NEW * (1.0 - old)
                 + W_LEN * min(len(inside), 3) / 3)
        out.append(Span(a, b, sentence[a:b], span_kind, round(score, 4), round(near, 4)))
    out.sort(key=lambda s: (-s.score, s.start))
    return out


def best_span(question: str, sentence: str) -> tuple[int, int, str] | None:
    """(start, end, text) of the short answer within `sentence`, or None."""
    spans = score_spans(question, sentence)
    if not spans:
        return None
    s = spans[0]
    return s.start, s.end, s.text


# A sentence that holds the asked-for kind may lead over a better-scored one that does not,
# when it scores within this of the best (the tram-cost sentence beside the vote sentence).
LEAD_WITHIN = 0.10
# Only a span whose kind fits this well is given as the short answer.
MIN_FIT = 1.0


def typed_spans(question: str, sentence: str) -> list[Span]:
    """The spans that fit the asked kind well enough to be a short answer, best first."""
    kind = asked_kind(question)
    if kind is None:
        return []
    return [sp for sp in score_spans(question, sentence)
            if kind == "thing" or _fit(kind, sp.kind, sentence, sp.start, sp.end,
                                       question) >= MIN_FIT]


def lead(question: str, sentences: Sequence[Any]) -> tuple[Any, Span | None]:
    """The sentence to lead with (from `sentences`, best first, each with `.text` and
    `.score`) and its short answer span (offsets within that sentence's text), if any."""
    if not sentences:
        raise ValueError("no sentences to lead with")
    if asked_kind(question) is None:
        return sentences[0], None
    best = sentences[0].score
    for s in sentences:
        if s.score < best - LEAD_WITHIN:
            break
        spans = typed_spans(question, s.text)
        if spans:
            return s, spans[0]
    return sentences[0], None
