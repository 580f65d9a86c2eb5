"""`answer()`: grounded answers with citations, or a plain "not in the articles".

retrieve -> read -> answer. The default mode is extractive (no LLM): the trained reader
finds the short answer in the retrieved passages and the answer quotes the sentence that
holds it (`rag.answering.extractive`). In LLM mode an OpenAI-compatible endpoint writes the
answer, offered the reader's span, and every sentence is then checked against the passage
it cites; unsupported sentences are dropped, and a reply that leaves out a confident
reader span is flagged.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rag.answering.extractive import Read, answer_from, confidence, read_hits
from rag.answering.followups import Turn, contextual_query, is_follow_up
from rag.errors import InputError, LLMError
from rag.ingest.dates import age_days, as_of_date, display_date, year_range
from rag.options import ANSWER_MODES, MAX_QUERY_CHARS, AnswerMode, Filters
from rag.results import Answer, Hit

if TYPE_CHECKING:
    from rag.answering.llm import Generator
    from rag.answering.reader import Reader
    from rag.index.facade import Index

# Nearer articles are mildly preferred for every question (news is asked about at a date):
# a hit's fused score (0-1) loses up to RECENCY_WEIGHT as its article ages, half of that
# at RECENCY_HALF_LIFE_DAYS. Chosen on news-dev's tune split (see README).
RECENCY_WEIGHT = 0.05
RECENCY_HALF_LIFE_DAYS = 365.0
RECENCY_DEPTH = 2  # hits searched per hit kept, so the decay can reorder
NOT_IN_ARTICLES = "Not in the articles: none of the indexed articles answers this."


def answer(
    question: str,
    index: Index,
    *,
    history: Sequence[Turn] = (),
    k: int = 5,
    mode: AnswerMode = "extractive",
    llm: Generator | None = None,
    filters: Filters | None = None,
    fallback: bool = True,
    reader: Reader | None = None,
) -> Answer:
    """Answer `question` from the articles in `index`, citing every sentence.

    `history` is the conversation so far as (question, answer) pairs, oldest first.
    `mode` is "extractive" (default, no LLM) or "llm" (needs `llm`, an OpenAI-compatible
    client); `filters` limits the articles drawn on; with `fallback`, an unreachable LLM gives the extractive answer plus a note.
    `reader` replaces the shipped reader model.
    """
    final: Answer | None = None
    for part in answer_stream(question, index, history=history, k=k, mode=mode, llm=llm,
                              filters=filters, fallback=fallback, reader=reader):
        if isinstance(part, Answer):
            final = part
    assert final is not None
    return final


def answer_stream(
    question: str,
    index: Index,
    *,
    history: Sequence[Turn] = (),
    k: int = 5,
    mode: AnswerMode = "extractive",
    llm: Generator | None = None,
    filters: Filters | None = None,
    fallback: bool = True,
    reader: Reader | None = None,
) -> Iterator[str | Answer]:
    """Like `answer()`, but yields the answer text as it grows, then the final `Answer`.

    In LLM mode the text grows sentence by sentence, each shown only once verification
    against its cited passage passed (`ground_reply` on the sentences ended so far). The
    final `Answer` is authoritative (the whole reply verified at once).
    """
    question = _clean_question(question)
    if mode not in ANSWER_MODES:
        raise InputError(f"unknown answer mode {mode!r}; use one of {', '.join(ANSWER_MODES)}")
    if mode == "llm" and llm is None:
        raise InputError("LLM mode needs an endpoint: set RAG_LLM_BASE_URL and RAG_LLM_MODEL")
    query = None
    if llm is not None and mode == "llm" and history and is_follow_up(question):
        query = _llm_rewrite(question, history, llm)
    hits = retrieve(question, index, history=history, k=k, filters=filters, query=query)
    read = read_question(question, hits, history, reader)
    if llm is not None and mode == "llm":
        try:
            yield from _llm_stream(question, read, history, llm, index)
            return
        except LLMError as e:
            if not fallback:
                raise
            note = f"{e} (showing the extractive answer instead)"
            final = extract_answer(question, read)
            yield final.text
            yield replace(final, notes=(note,))
            return
    final = extract_answer(question, read)
    yield final.text
    yield final


def read_question(question: str, hits: Sequence[Hit], history: Sequence[Turn] = (),
                  reader: Reader | None = None) -> Read:
    """The reader's verdict on `hits`. A follow-up is read with its context ("he" is the
    diplomat of the previous question) and avoids the sentence it was just given."""
    from rag.answering.reader import shared_reader

    follow_up = bool(history) and is_follow_up(question)
    asked = contextual_query(question, history, with_answer=False) if follow_up else question
    said = history[-1][1] if follow_up else ""
    return read_hits(asked, hits, reader or shared_reader(), avoid=said)


def _clean_question(question: str) -> str:
    q = " ".join((question or "").split())
    if not q:
        raise InputError("the question is empty; type a question about the articles")
    if not any(ch.isalnum() for ch in q):
        raise InputError("the question has no words; type a question about the articles")
    return q[:MAX_QUERY_CHARS]


def retrieve(question: str, index: Index, *, history: Sequence[Turn] = (), k: int = 5,
             filters: Filters | None = None, query: str | None = None) -> list[Hit]:
    """The passages an answer draws on, as of `filters.as_of` (default today).

    Follow-ups are searched with their context and explicit years are filtered on. Articles
    published after the as-of date are left out (undated ones stay), and every question
    mildly prefers nearer articles: see `RECENCY_WEIGHT`."""
    query = query or contextual_query(question, history)
    filters = filters or Filters()
    as_of = as_of_date(filters.as_of)
    before = min(filters.published_before, as_of) if filters.published_before else as_of
    newest = _newest_published(index)
    if filters.published_before or (newest is not None and newest[:len(as_of)] > as_of):
        filters = replace(filters, published_before=before, as_of=as_of)
    else:  # nothing is newer than the as-of date: no filter to pay for
        filters = replace(filters, as_of=as_of)
    years = year_range(question)
    hits: list[Hit] = []
    if years and not filters.published_after and years[0] <= as_of:
        hits = index.search(query, k=k * RECENCY_DEPTH, filters=replace(
            filters, published_after=years[0], published_before=min(years[1], before)))
    if not hits:
        hits = index.search(query, k=k * RECENCY_DEPTH, filters=filters)
    return prefer_recent(hits, as_of, k)


# store -> (its version, the newest publication date): one small query per version. Keyed
# by the store object, not the index path: a rebuild swaps in a new store at the same path
# whose version count starts again, and must not inherit the old store's date.
_NEWEST: weakref.WeakKeyDictionary[Any, tuple[int, str | None]] = weakref.WeakKeyDictionary()


def _newest_published(index: Index) -> str | None:
    """The newest publication date in the index (remembered per store and version)."""
    store = getattr(index, "store", None)
    if store is None:
        return "9999"  # unknown: always filter
    version = store.version
    known = _NEWEST.get(store)
    if known is None or known[0] != version:
        row = store.db.execute("SELECT max(published) FROM articles").fetchone()
        known = _NEWEST[store] = (version, row[0] if row else None)
    return known[1]


def prefer_recent(hits: Sequence[Hit], as_of: str, k: int,
                  weight: float | None = None) -> list[Hit]:
    """The `k` best hits after a mild decay of each score with the article's age at `as_of`.

    score - weight * (1 - 2 ** (-age / RECENCY_HALF_LIFE_DAYS)); undated articles lose
    nothing. Ranks are renumbered.
    """
    w = RECENCY_WEIGHT if weight is None else weight
    def adjusted(h: Hit) -> float:
        age = age_days(h.published, as_of)
        if age is None or w == 0:
            return h.score
        return h.score - w * (1 - 2 ** (-max(age, 0.0) / RECENCY_HALF_LIFE_DAYS))
    ranked = sorted(hits, key=lambda h: -adjusted(h))[:k]
    return [replace(h, rank=i) for i, h in enumerate(ranked, start=1)]


def extract_answer(question: str, read: Read) -> Answer:
    """The extractive answer from the reader's verdict, or a refusal naming the closest
    passages (in the reader's order)."""
    made = answer_from(question, read)
    return made if made is not None else _abstain(question, read.hits, confidence(read))


def _abstain(question: str, hits: Sequence[Hit], confidence: float, mode: str = "extractive",
             dropped: tuple[str, ...] = ()) -> Answer:
    lines = [NOT_IN_ARTICLES]
    if hits:
        lines.append("Closest passages found:")
        for h in hits[:3]:
            when = display_date(h.published)
            snippet = " ".join(h.text.split())[:160]
            lines.append(f"- {h.title}{f' ({when})' if when else ''}: \u201c{snippet}\u2026\u201d")
    return Answer(question=question, text="\n".join(lines), citations=(), hits=tuple(hits),
                  abstained=True, mode=mode, confidence=round(confidence, 4), dropped=dropped)


_SENTENCE_END = re.compile(r"[.!?][\"\u201d')]*(?:\s*\[[^\]]*\])*\s+(?=[^\s\[])")


def complete_sentences(reply: str) -> str:
    """The part of a streaming reply whose sentences have ended (markers after the full
    stop included: they may still be coming until the next sentence starts).

    >>> complete_sentences("Two were intercepted. [1] Five hit Mos")
    'Two were intercepted. [1] '
    >>> complete_sentences("Two were intercepted [1")
    ''
    """
    ends = list(_SENTENCE_END.finditer(reply))
    return reply[: ends[-1].end()] if ends else ""


class _Memo:
    """An embedder that embeds each distinct text once (streaming verification asks for the
    same passages after every sentence)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.dim: int = inner.dim
        self.cache: dict[str, Any] = {}

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for t, v in zip(missing, self.inner.embed(missing), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed([])


def _llm_rewrite(question: str, history: Sequence[Turn], llm: Generator) -> str | None:
    """A standalone search query written by the LLM; None (use the heuristic) if it fails."""
    from rag.answering.prompt import clean_rewrite, rewrite_messages

    try:
        reply = "".join(llm.generate(rewrite_messages(question, history)))
    except LLMError:
        return None
    return clean_rewrite(reply, fallback=contextual_query(question, history)) or None


def _llm_stream(question: str, read: Read, history: Sequence[Turn], llm: Generator,
                index: Index) -> Iterator[str | Answer]:
    from rag.answering.prompt import build_messages, reader_hint
    from rag.answering.verify import ground_reply

    hits = read.hits
    if not hits:
        yield NOT_IN_ARTICLES
        yield _abstain(question, hits, 0.0, mode="llm")
        return
    reply, checked, shown = "", "", ""
    embedder = _Memo(index.embedder)  # each check re-embeds the same passages: once is enough
    n = hits.index(read.hit) + 1 if read.hit is not None and read.hit in hits else 0
    hint = reader_hint(read.span.text, n) if read.span is not None and n else None
    for delta in llm.generate(build_messages(question, hits, history, hint=hint)):
        reply += delta
        done = complete_sentences(reply)
        if len(done) > len(checked):  # a sentence ended: show what passes verification
            checked = done
            partial = ground_reply(done, hits, embedder)
            if partial.text and partial.text != shown:
                shown = partial.text
                yield shown
    grounded = ground_reply(reply, hits, embedder)
    if grounded.abstained:
        yield _abstain(question, hits, 0.0, mode="llm", dropped=grounded.dropped)
        return
    notes: tuple[str, ...] = ()
    if read.span is not None and not _says(grounded.text, read.span.text):
        notes = (f"Check this answer: the reader found “{read.span.text}” in [{n}], "
                 "which the generated answer does not say.",)
    yield Answer(question=question, text=grounded.text, citations=grounded.citations,
                 hits=tuple(hits), abstained=False, mode="llm", confidence=1.0,
                 dropped=grounded.dropped, notes=notes)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _says(text: str, phrase: str) -> bool:
    """True when `phrase`'s words occur, in order and together, in `text`.

    >>> _says("It cost $42 million, he said.", "42 million"), _says("Ann won.", "Bob")
    (True, False)
    """
    return f" {_words(phrase)} " in f" {_words(text)} "
