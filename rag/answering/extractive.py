"""The extractive answer: the reader's span, the sentence that holds it, cited; or a refusal.

retrieve -> read -> answer. The reader (`rag.answering.reader`) reads the top
`READ_PASSAGES` passages and returns spans scored against "no answer". Its best span is
the short answer; the sentence around it, quoted verbatim from the article, is the
answer, cited; the passages it read are re-ordered by the reader's scores, so the first
source is the one that answers. The answer is refused when the reader finds no span
above its threshold, or when the passage holding the span matches the question too
weakly (retrieval evidence: the reader judges one passage, not whether the collection is
about the question at all).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.answering.reader import Reader, Reading, Span
from rag.ingest.sentences import split_sentences
from rag.markers import cite
from rag.results import Answer, Citation, Hit, Short

# Passages the reader reads (chunks of <= 160 tokens, one window each). Stage-3 reader,
# bench/tune_refusal.py --passages 3 5, 2026-12-08, 2 quiet cores of an AMD host without
# AMX: 5 passages scored 0.341 / 0.552 (news-dev tune / SQuAD train open), 3 passages 0.303
# / 0.534, but answer() with 5 took 223 ms p50 on news-dev, over its 200 ms budget (README),
# and 169 ms with 3, so 3. (On the AMX host of 2026-12-07, 5 fit: 185 ms.)
READ_PASSAGES = 3
# Refuse unless the best span's reader score (logits of span over null) clears
# REFUSAL_LINE and its passage's cosine with the question reaches MIN_COSINE. Chosen by the
# same run: the best mean short-answer objective over news-dev tune and SQuAD train's
# held-out articles in the open setting, with at most 10 % of answerable questions refused
# in each (news alone would have chosen -9.25). The line is absolute, not relative to the
# reader's own threshold: that threshold serves the closed setting (a passage given,
# docs/READER.md) and moves with every retraining, while this line is the open setting's.
REFUSAL_LINE = -7.75
MIN_COSINE = 0.35
# A second sentence joins the answer when the reader's best span in another sentence scores
# within SECOND_GAP of the best (and clears the refusal line): the reader is torn, and the
# user sees both candidates, each cited. Chosen by the same run: the best answer-contains
# on tune at <= 1.35 sentences an answer, a margin under the 1.5 target (tune 0.293 at 1.33
# sentences; report 0.312 at 1.45).
SECOND_GAP = 1.0
MAX_QUOTE_CHARS = 400  # a "sentence" longer than this (a table, a list) is quoted around the span


@dataclass(frozen=True)
class Read:
    """The reader's verdict on a question's passages, with the passages in its order."""

    reading: Reading
    hits: tuple[Hit, ...]  # re-ordered: passages with the best spans first
    span: Span | None  # the span the answer uses (None: refuse)
    hit: Hit | None  # the passage it comes from
    second: Span | None = None  # a close runner-up in another sentence, quoted second
    second_hit: Hit | None = None


def read_hits(question: str, hits: Sequence[Hit], reader: Reader, *,
              passages: int = READ_PASSAGES, avoid: str = "", line: float = REFUSAL_LINE,
              min_cosine: float = MIN_COSINE, gap: float = SECOND_GAP) -> Read:
    """Read the top `passages` hits and decide; `avoid` is text the user was just given
    (a follow-up rarely wants the same sentence again). `line` and `min_cosine` are the
    refusal's settings, `gap` the second sentence's (the tuner sweeps them)."""
    read = list(hits[:passages])
    reading = reader.read(question, [h.text for h in read])
    best_of: dict[int, float] = {}
    for s in reading.spans:
        best_of.setdefault(s.passage, s.score)
    order = sorted(range(len(read)), key=lambda i: -best_of.get(i, -math.inf))
    ordered = [read[i] for i in order] + list(hits[passages:])
    ordered = [replace(h, rank=r) for r, h in enumerate(ordered, start=1)]
    span = next((s for s in reading.spans if not avoid or
                 sentence_of(read[s.passage].text, s)[2] not in avoid), None)
    limit = line
    hit = read[span.passage] if span is not None else None
    if span is None or span.score <= limit or (hit is not None and hit.dense < min_cosine):
        return Read(reading, tuple(ordered), None, None)
    assert hit is not None
    second = runner_up(reading, [h.text for h in read], span, limit=max(limit, span.score - gap),
                       usable=lambda s: read[s.passage].dense >= min_cosine and not (
                           avoid and sentence_of(read[s.passage].text, s)[2] in avoid))
    return Read(reading, tuple(ordered), span, replace(hit, rank=order.index(span.passage) + 1),
                second, replace(read[second.passage], rank=order.index(second.passage) + 1)
                if second is not None else None)


def runner_up(reading: Reading, texts: Sequence[str], best: Span, *, limit: float,
              usable: Callable[[Span], bool] = lambda s: True) -> Span | None:
    """The best span above `limit` whose sentence is neither the best span's nor a copy of
    it (wire copy repeats sentences across articles), or None."""
    first = sentence_of(texts[best.passage], best)
    for s in reading.spans:
        if s.score <= limit:
            return None
        a, b, quote = sentence_of(texts[s.passage], s)
        same = s.passage == best.passage and a < first[1] and b > first[0]
        if not same and quote != first[2] and usable(s):
            return s
    return None


def sentence_of(text: str, span: Span) -> tuple[int, int, str]:
    """The sentence(s) of `text` that hold the span, as (start, end, text).

    >>> sentence_of("It rained. Ann won the race. Bob lost.", Span("Ann", 0, 11, 14, 1.0))
    (11, 28, 'Ann won the race.')
    """
    bounds = [(a, b) for a, b in split_sentences(text) if a < span.end and b > span.start]
    a = min((x for x, _ in bounds), default=span.start)
    b = max((y for _, y in bounds), default=span.end)
    if b - a > MAX_QUOTE_CHARS:  # no sentence ends nearby: a window of whole words
        half = (MAX_QUOTE_CHARS - (span.end - span.start)) // 2
        a = max(a, span.start - max(half, 0))
        b = min(b, span.end + max(half, 0))
        while a > 0 and a < span.start and not text[a - 1].isspace():
            a += 1
        while b < len(text) and b > span.end and not text[b].isspace():
            b -= 1
    while a < span.start and text[a].isspace():
        a += 1
    while b > span.end and text[b - 1].isspace():
        b -= 1
    return a, b, text[a:b]


def confidence(read: Read) -> float:
    """The reader's margin over the refusal line as a probability-like 0-1 figure."""
    if not read.reading.spans:
        return 0.0
    margin = read.reading.spans[0].score - REFUSAL_LINE
    return 1.0 / (1.0 + math.exp(-margin))


def answer_from(question: str, read: Read) -> Answer | None:
    """The answer for a decided `read`: its sentence cited [1], its span as `short`;
    None when the reader refused."""
    if read.span is None or read.hit is None:
        return None
    hit, span = read.hit, read.span
    a, b, quote = sentence_of(hit.text, span)
    citation = Citation.of(hit, 1, quote, hit.start + a, hit.start + b)
    short = Short(text=span.text, n=1, start=hit.start + span.start, end=hit.start + span.end)
    citations, text = [citation], f"{quote} {cite(1)}"
    if read.second is not None and read.second_hit is not None:
        c, d, also = sentence_of(read.second_hit.text, read.second)
        h2 = read.second_hit
        citations.append(Citation.of(h2, 2, also, h2.start + c, h2.start + d))
        text += f" {also} {cite(2)}"
    return Answer(question=question, text=text, citations=tuple(citations),
                  hits=read.hits, abstained=False, mode="extractive",
                  confidence=round(confidence(read), 4), short=short)
