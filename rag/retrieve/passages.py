"""From ranked chunks to the passages a reader sees.

Chunks are small so that each fits the embedder whole (256 word pieces). A reader, and an
answer, need more context than that: overlapping or adjacent chunks of one article are
merged into one passage (so the top k are k different places, not one place k times), and
each passage is widened by its neighbouring chunks, up to `max_chars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from rag.results import Hit


class ArticleText(Protocol):
    """The article text around a chunk (`rag.index.store.Store`, which `Index.search` hands in)."""

    def neighbor_spans(self, chunk_id: int, n: int) -> list[tuple[int, int]]:
        """(start, end) of the chunks within `n` positions of `chunk_id` in its article."""
        ...

    def article_slice(self, article_id: str, start: int, end: int) -> str | None:
        """`article.text[start:end]`, or None where the article is gone."""
        ...


@dataclass(frozen=True)
class PassageSpec:
    """`neighbors` chunks on each side are added to a hit, within `max_chars` in all.

    `per_article` caps the passages drawn from one article (None: no cap). An article
    with a chunk whose words are at least `same_story` (share of the smaller word set)
    those of a better-ranked chunk of another article is a syndicated copy: none of its
    chunks is used (None: copies kept).
    """

    neighbors: int = 1
    max_chars: int = 1600
    per_article: int | None = None
    same_story: float | None = None


def passages(hits: Sequence[Hit], store: ArticleText, k: int, spec: PassageSpec = PassageSpec()
             ) -> list[Hit]:
    """The best `k` distinct passages from ranked chunk `hits` (best first).

    A hit that overlaps or touches an already chosen passage of the same article is folded
    into it; the passage keeps its best chunk's id and scores.
    """
    own = {h.chunk_id: h for h in hits}  # each chunk's text as searched
    chosen: list[Hit] = []
    seen: list[tuple[str, frozenset[str]]] = []  # (article, words) of the chunks so far
    copies: set[str] = set()  # articles found to repeat an earlier article's text
    for h in hits:
        if spec.same_story is not None:
            if h.article_id in copies:
                continue
            mine = _words(h.text)
            if any(a != h.article_id and _overlap(mine, w) >= spec.same_story for a, w in seen):
                copies.add(h.article_id)
                continue
            seen.append((h.article_id, mine))
        for i, p in enumerate(chosen):
            if p.article_id == h.article_id and h.start <= p.end + 1 and h.end >= p.start - 1:
                start, end = min(p.start, h.start), max(p.end, h.end)
                if end - start <= spec.max_chars:
                    chosen[i] = replace(p, start=start, end=end)
                    break
        else:
            if spec.per_article is not None and \
                    sum(p.article_id == h.article_id for p in chosen) >= spec.per_article:
                continue
            chosen.append(h)  # too far to fold in: its own passage (made disjoint below)
    # Widening can make two passages of one article overlap: those fold together, or else
    # the margin between them is split so that each keeps its core (the matching chunks).
    # Passages are widened one by one until k distinct ones stand: every hit is a spare.
    merged: list[tuple[int, Hit, tuple[int, int]]] = []  # (rank, passage, core)
    for rank, core in enumerate(chosen):
        if len(merged) == k:
            break
        cand: Hit | None = _widened(core, store, spec)
        p_core = (core.start, core.end)
        i = 0
        while cand is not None and i < len(merged):
            p = cand
            q_rank, q, q_core = merged[i]
            if q.article_id != p.article_id or p.start >= q.end or p.end <= q.start:
                i += 1
                continue
            lo, hi = min(q.start, p.start), max(q.end, p.end)
            if hi - lo <= spec.max_chars:
                # The fold takes the better rank, and may now meet another passage.
                del merged[i]
                if q_rank < rank:
                    p, p_core, rank = q, q_core, q_rank
                cand, i = replace(p, start=lo, end=hi), 0
                continue
            q, p = _split(q, q_core, p, p_core)
            merged[i] = (q_rank, q, q_core)
            cand = p if p.end > p.start else None
            i += 1
        if cand is not None:
            merged.append((rank, cand, p_core))
    merged.sort(key=lambda m: m[0])
    return [replace(_with_text(p, store, own[p.chunk_id]), rank=n)
            for n, (_, p, _) in enumerate(merged, start=1)]


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in text.split())


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Shared words over the smaller set's size: 1.0 when one text's words hold the other's.

    >>> _overlap(frozenset("a b c".split()), frozenset("a b c d".split()))
    1.0
    """
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def _widened(p: Hit, store: ArticleText, spec: PassageSpec) -> Hit:
    if spec.neighbors <= 0:
        return p
    start, end = p.start, p.end
    for a, b in store.neighbor_spans(p.chunk_id, spec.neighbors):
        if min(start, a) < start and max(end, b) - min(start, a) <= spec.max_chars:
            start = min(start, a)
        if max(end, b) > end and max(end, b) - start <= spec.max_chars:
            end = max(end, b)
    return replace(p, start=start, end=end)


def _split(q: Hit, q_core: tuple[int, int], p: Hit, p_core: tuple[int, int]) -> tuple[Hit, Hit]:
    """Overlapping passages `q` (ranked higher) and `p`, made disjoint: the boundary goes
    where q's widening meets p's core, and never inside q's core."""
    if p_core[0] >= q_core[0]:  # p lies after q
        cut = max(q_core[1], min(q.end, p_core[0]))
        return replace(q, end=min(q.end, cut)), replace(p, start=max(p.start, cut))
    cut = min(q_core[0], max(q.start, p_core[1]))
    return replace(q, start=max(q.start, cut)), replace(p, end=min(p.end, cut))


def _with_text(p: Hit, store: ArticleText, chunk: Hit) -> Hit:
    """The passage's text from the article row, trimmed of surrounding whitespace.

    If the article was rewritten after this search's version (an update is being written
    while we search), its row no longer matches the chunk's offsets: then the chunk as
    searched is the passage, never a mix of two versions.
    """
    text = store.article_slice(p.article_id, p.start, p.end)
    lo, hi = max(p.start, chunk.start), min(p.end, chunk.end)
    if text is None or text[lo - p.start:hi - p.start] != chunk.text[lo - chunk.start:hi - chunk.start]:
        return replace(chunk, rank=p.rank)
    lead = len(text) - len(text.lstrip())
    trail = len(text) - len(text.rstrip())
    return replace(p, text=text.strip(), start=p.start + lead, end=p.end - trail)
