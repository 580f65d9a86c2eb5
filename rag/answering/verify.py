"""Checking an LLM's sentences against the passages they cite.

A sentence's support from a passage is a score in [0, 1]:

    DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lexical

`dense` is the best cosine similarity between the sentence and one sentence (or two
adjacent sentences) of the passage. `lexical` is the weighted share of the sentence's
content words found in the passage (capitalised words, i.e. names, count ENTITY_WEIGHT, others
1; words match by stem or a long shared prefix). Numbers are a hard rule: a sentence with
a number (digits or a word like "five") that the passage lacks scores 0. Known blind
spots: negation ("were not intercepted"), and "one", too common to treat as a number.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from rag.answering.prompt import ABSTAIN
from rag.embed.embedder import Embedder
from rag.index.lexical import stemmer
from rag.ingest.dates import display_date
from rag.ingest.sentences import split_sentences
from rag.markers import MARKER, REF
from rag.markers import cited as marker_numbers
from rag.results import Citation, Hit

# Calibrated with all-MiniLM-L6-v2 on 43 hand-made claims against two passages of the seed
# article: at 0.7, 17 of 20 faithful paraphrases pass (compound sentences score 0.87-0.95)
# and 5 of 23 false claims do (those that reuse the passage's words with another meaning).
DENSE_WEIGHT = 0.5
ENTITY_WEIGHT = 2.0  # a capitalised word (a name) counts double among the claim's words
SUPPORT_THRESHOLD = 0.7  # a cited sentence needs this much support from a passage it cites
STRONG_SUPPORT_THRESHOLD = 0.8
WINDOW_WORDS = 14  # long sentences are also compared clause-sized, in windows of this many words  # an uncited sentence is kept only with this much from a hit

# Markers after the full stop ("...intercepted. [1] Next") belong to that sentence.
_MARKERS_AFTER_STOP = re.compile(
    rf"([.!?]+[\"'”’»)]*)[ \t]*((?:{REF}[ \t]*)*{REF})", re.IGNORECASE
)
_MARKER_AND_SPACE = re.compile(rf"[ \t]*{REF}", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_ACRONYM = re.compile(r"\b(?:[A-Za-z]\.){2,}")  # U.S. -> US
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[A-Za-z]+(?:['’][A-Za-z]+)?")
# "one" is left out on purpose: "one of the", "no one" are rarely counts.
_NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_MONTHS = tuple(m.lower() for m in calendar.month_name[1:])
# A word list reads best as text, hence the noqa.
_STOPWORDS = frozenset("""a about above after again against all also am amid an and any are as
    at be because been before being below between both but by can could did do does doing down
    during each few for from further had has have having he her here hers him his how however i
    if in into is it its itself just me more most my no nor not of off on once one only or other
    our out over own same she should since so some such than that the their them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your said says say stated told added noted according
    reported reportedly""".split())  # noqa: SIM905


@dataclass(frozen=True)
class Grounded:
    """An LLM reply after checking: kept sentences with renumbered [n] markers."""

    text: str
    citations: tuple[Citation, ...]
    dropped: tuple[str, ...]  # each removed sentence with the reason, for display
    abstained: bool


@dataclass(frozen=True)
class _Terms:
    words: dict[str, float]  # stem -> weight (a claim's content words; a passage's every word)
    numbers: frozenset[str]


@dataclass(frozen=True)
class _Passage:
    hit: Hit
    vocab: _Terms
    sentences: tuple[tuple[int, int], ...]  # local offsets into hit.text
    vectors: np.ndarray  # one row per sentence, then one per adjacent pair


@dataclass(frozen=True)
class _Support:
    score: float
    span: tuple[int, int]  # the best-supporting sentence, local offsets into hit.text
    missing_numbers: tuple[str, ...]


@dataclass(frozen=True)
class _Sentence:
    core: str  # as written, markers removed
    claim: str  # core without a list bullet: what is checked
    cited: tuple[int, ...]  # valid marker numbers, 1-based
    bogus: tuple[int, ...]  # marker numbers that point at no hit
    newline: bool  # a line break preceded it in the reply


def support_score(claim: str, passage: str, embedder: Embedder) -> float:
    """How well `passage` supports `claim`, in [0, 1]; see the module docstring.

    Supported at SUPPORT_THRESHOLD and above. A claim with a number the passage lacks
    scores 0 whatever the embedder says.
    """
    hit = Hit(article_id="", title="", published=None, source=None, url=None, path=None,
              rank=0, score=0.0, chunk_id=-1, text=passage, start=0, end=len(passage))
    [vec], [p] = _embed([claim], [hit], embedder, with_metadata=False)
    return _support(_claim_terms(claim), vec, [p]).score


def ground_reply(reply: str, hits: Sequence[Hit], embedder: Embedder) -> Grounded:
    """Keep the sentences of `reply` that the hits support, with checked citations.

    Markers [n] refer to `hits[n-1]`. A cited sentence stays when a hit it cites supports
    it (SUPPORT_THRESHOLD); its markers to other hits are removed. An uncited sentence
    stays only when some hit supports it strongly (STRONG_SUPPORT_THRESHOLD), citing that
    hit. Kept markers are renumbered 1..n by first appearance; each citation quotes the
    hit's sentence that best supports the sentences citing it.
    """
    text = reply.strip()
    if not text or _is_abstention(text):
        return Grounded("", (), (), True)
    sentences, dropped = _parse(text, len(hits))
    if not sentences or not hits:
        dropped += [f'"{s.claim}": there are no sources to check it against' for s in sentences]
        return Grounded("", (), tuple(dropped), True)
    claim_vecs, passages = _embed([s.claim for s in sentences], hits, embedder, True)

    kept: list[tuple[_Sentence, list[int]]] = []
    best: dict[int, _Support] = {}  # hit number -> the best support it gave a kept sentence
    for s, vec in zip(sentences, claim_vecs, strict=True):
        terms = _claim_terms(s.claim)
        candidates = s.cited or tuple(range(1, len(hits) + 1))
        singles = {i: _support(terms, vec, [passages[i - 1]]) for i in candidates}
        threshold = SUPPORT_THRESHOLD if s.cited else STRONG_SUPPORT_THRESHOLD
        chosen = [i for i in candidates if singles[i].score >= threshold]
        if not s.cited:
            chosen = sorted(chosen, key=lambda i: -singles[i].score)[:1]
        elif not chosen and len(s.cited) > 1:  # a sentence joining facts from two sources
            together = _support(terms, vec, [passages[i - 1] for i in s.cited])
            chosen = list(s.cited) if together.score >= threshold else []
        if not chosen:
            top = max(singles.values(), key=lambda x: x.score)
            dropped.append(f'"{s.claim}": {_why(s, top, threshold)}')
            continue
        for i in chosen:
            if i not in best or singles[i].score > best[i].score:
                best[i] = singles[i]
        kept.append((s, chosen))
    if not kept:
        return Grounded("", (), tuple(dropped), True)

    order = list(dict.fromkeys(i for _, chosen in kept for i in chosen))
    renumber = {i: n for n, i in enumerate(order, 1)}
    out = ""
    for s, chosen in kept:
        sep = ("\n" if s.newline else " ") if out else ""
        out += sep + _with_markers(s.core, [renumber[i] for i in chosen])
    citations = tuple(_citation(renumber[i], hits[i - 1], best[i]) for i in order)
    return Grounded(out, citations, tuple(dropped), False)


def _parse(text: str, n_hits: int) -> tuple[list[_Sentence], list[str]]:
    """The reply's sentences with their markers, and those dropped without checking."""
    text = _MARKERS_AFTER_STOP.sub(lambda m: f" {m.group(2).strip()}{m.group(1)}", text)
    sentences, dropped, previous_end = [], [], 0
    for a, b in split_sentences(text):
        raw, newline, previous_end = text[a:b], "\n" in text[previous_end:a], b
        numbers = [n for m in MARKER.finditer(raw) for n in marker_numbers(m)]
        core = _MARKER_AND_SPACE.sub("", raw).strip()
        claim = _BULLET.sub("", core).strip()
        if not re.search(r"\w", claim):
            continue  # a stray marker or a divider line: nothing to check
        if ABSTAIN in claim:
            dropped.append(f'"{claim}": the model said the articles do not answer this')
            continue
        cited = tuple(dict.fromkeys(n for n in numbers if 1 <= n <= n_hits))
        bogus = tuple(n for n in numbers if not 1 <= n <= n_hits)
        sentences.append(_Sentence(core, claim, cited, bogus, newline))
    return sentences, dropped


def _embed(
    claims: Sequence[str], hits: Sequence[Hit], embedder: Embedder, with_metadata: bool
) -> tuple[np.ndarray, list[_Passage]]:
    """Claim vectors and the hits as passages, all from one call to the embedder."""
    spans = [tuple(split_sentences(h.text)) for h in hits]
    # Units compared with a claim: each sentence, each adjacent pair, and word windows of
    # long sentences (a short claim that restates one clause of a 40-word sentence scores
    # ~0.35 against the whole sentence but ~0.8 against the clause).
    units = [s + tuple((s[k][0], s[k + 1][1]) for k in range(len(s) - 1))
             + tuple(w for a, b in s for w in _windows(h.text, a, b))
             for h, s in zip(hits, spans, strict=True)]
    texts = list(claims) + [h.text[a:b] for h, u in zip(hits, units, strict=True) for a, b in u]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    passages, at = [], len(claims)
    for hit, sentences, u in zip(hits, spans, units, strict=True):
        # The prompt shows title and date, so a claim may use them ("On November 26 ...").
        # The date as shown to the model: ISO's "+05:30" must not count as the number 5.
        extra = f"{hit.title}\n{display_date(hit.published)}" if with_metadata else ""
        passages.append(_Passage(hit, _vocab(hit.text, extra), sentences, vectors[at:at + len(u)]))
        at += len(u)
    return vectors[: len(claims)], passages


def _windows(text: str, a: int, b: int, size: int = WINDOW_WORDS) -> list[tuple[int, int]]:
    """Overlapping spans of `size` words inside the sentence text[a:b] (none if short)."""
    words = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    if len(words) <= size + size // 2:
        return []
    step = size // 2
    return [(words[i][0], words[min(i + size, len(words)) - 1][1])
            for i in range(0, len(words) - step, step)]


def _support(claim: _Terms, claim_vec: np.ndarray, passages: Sequence[_Passage]) -> _Support:
    """Support from the passages taken together; `span` is the best sentence of the first."""
    first = passages[0]
    if not first.sentences:
        return _Support(0.0, (0, 0), ())
    dense = max(float(np.max(p.vectors @ claim_vec)) for p in passages if len(p.vectors))
    pool = _Terms({w: 1.0 for p in passages for w in p.vocab.words},
                  frozenset().union(*(p.vocab.numbers for p in passages)))
    lexical, missing = _lexical(claim, pool)
    score = DENSE_WEIGHT * min(max(dense, 0.0), 1.0) + (1 - DENSE_WEIGHT) * lexical
    if missing or not claim.words:
        score = 0.0
    # The quote: the sentence most similar to the claim, word overlap breaking near-ties.
    sims = first.vectors[: len(first.sentences)] @ claim_vec
    scores = [float(sims[k]) + _lexical(claim, _vocab(first.hit.text[a:b]))[0]
              for k, (a, b) in enumerate(first.sentences)]
    k = max(range(len(scores)), key=scores.__getitem__)
    return _Support(score, first.sentences[k], missing)


def _why(sentence: _Sentence, support: _Support, threshold: float) -> str:
    numbers = ", ".join(support.missing_numbers)
    if sentence.cited and numbers:
        reason = f"the cited passage does not contain {numbers}"
    elif sentence.cited:
        reason = f"the cited passage does not support it ({support.score:.2f} < {threshold:.2f})"
    else:
        best = f"no passage contains {numbers}" if numbers else (
            f"no passage supports it strongly ({support.score:.2f} < {threshold:.2f})")
        reason = f"it cites no source and {best}"
    if sentence.bogus:
        reason += f"; [{', '.join(map(str, sentence.bogus))}] is not a source"
    return reason


def _citation(n: int, hit: Hit, support: _Support) -> Citation:
    a, b = support.span
    return Citation.of(hit, n, hit.text[a:b], hit.start + a, hit.start + b)


def _with_markers(core: str, numbers: Sequence[int]) -> str:
    """`core` with `[n]` markers before its final full stop, or at the end.

    >>> _with_markers("Two were intercepted.", [1, 2])
    'Two were intercepted [1][2].'
    """
    markers = "".join(f"[{n}]" for n in numbers)
    if core[-1:] in (".", "!", "?") and core[-2:-1] not in (".", "!", "?"):
        return f"{core[:-1]} {markers}{core[-1]}"
    return f"{core} {markers}"


def _is_abstention(text: str) -> bool:
    """True when the reply opens with NOT_IN_ARTICLES (ignoring quotes, markdown, spacing)."""
    return re.sub(r"[^A-Za-z]", "", text[:40]).upper().startswith("NOTINARTICLES")


def _numbers_and_words(text: str) -> tuple[set[str], list[tuple[int, str, str]]]:
    """Normalised numbers ("1,000", "1 thousand" -> "1000"; "five" -> "5"), and the words
    as (position, as written, stem)."""
    text = _ACRONYM.sub(lambda m: m.group(0).replace(".", ""), text)
    tokens = _TOKEN.findall(text)
    numbers: set[str] = set()
    words: list[tuple[int, str, str]] = []
    for k, raw in enumerate(tokens):
        low = raw.lower()
        if raw[0].isdigit():
            digits = re.sub(r"(st|nd|rd|th)$", "", low).replace(",", "")
            try:
                value = float(digits)
            except ValueError:  # "1.2.3": keep as written
                numbers.add(digits)
                continue
        elif low in _NUMBER_WORDS:
            value = float(_NUMBER_WORDS[low])
        else:
            if low not in _SCALES or not (k and tokens[k - 1][0].isdigit()):
                words.append((k, raw, stemmer().stemWord(re.sub(r"['’]s$", "", low))))
            continue
        value *= _SCALES.get(tokens[k + 1].lower() if k + 1 < len(tokens) else "", 1.0)
        numbers.add(f"{value:.10g}")
    return numbers, words


def _claim_terms(claim: str) -> _Terms:
    numbers, words = _numbers_and_words(claim)
    weights: dict[str, float] = {}
    for _, raw, stem in words:
        if raw.lower() in _STOPWORDS and not (len(raw) > 1 and raw.isupper()):  # "US" stays
            continue
        # A capital marks a name (stop words like "The" are gone by now, so a capitalised
        # first word is usually a name too: "Zelensky said ...").
        weight = ENTITY_WEIGHT if raw[0].isupper() else 1.0
        weights[stem] = max(weights.get(stem, 0.0), weight)
    return _Terms(weights, frozenset(numbers))


@functools.lru_cache(maxsize=4096)  # the same passage sentences come up for every claim
def _vocab(text: str, extra: str = "") -> _Terms:
    numbers, words = _numbers_and_words(f"{text}\n{extra}")
    stems = {stem for _, _, stem in words}
    for month in re.findall(r"\b\d{4}-(\d{2})-\d{2}", extra):  # 2024-11-26 -> "November"
        if 1 <= int(month) <= 12:
            stems.add(stemmer().stemWord(_MONTHS[int(month) - 1]))
    return _Terms(dict.fromkeys(stems, 1.0), frozenset(numbers))


def _lexical(claim: _Terms, vocab: _Terms) -> tuple[float, tuple[str, ...]]:
    """Weighted share of the claim's words found in `vocab`, and its numbers missing there."""
    missing = tuple(sorted(claim.numbers - vocab.numbers))
    total = sum(claim.words.values())
    found = sum(w for stem, w in claim.words.items() if _found(stem, vocab.words))
    return (found / total if total else 0.0), missing


def _found(stem: str, stems: Collection[str]) -> bool:
    """The stem itself, or a long shared prefix ("ukrain" / "ukrainian")."""
    if stem in stems:
        return True
    for other in stems if len(stem) >= 5 else ():
        shorter = min(len(stem), len(other))
        common = next((k for k, (x, y) in enumerate(zip(stem, other, strict=False)) if x != y), shorter)
        if shorter >= 5 and common >= max(5.0, 0.75 * shorter):
            return True
    return False


