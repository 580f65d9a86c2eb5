"""From ranked chunks to the passages a reader sees.

Chunks are small so that each fits the embedder whole (256 word pieces). A reader, and an
answer, need more context than that: overlapping or adjacent chunks of one article are
merged into one passage (so the top k are k different places, not one place k times), and
each passage is widened by its neighbouring chunks, up to `max_chars`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .hits import Hit
from .store import Store


@dataclass(frozen=True)
class PassageSpec:
    """`neighbors` chunks on each side are added to a hit, within `max_chars` in all."""

    neighbors: int = 1
    max_chars: int = 1600


def passages(hits: Sequence[Hit], store: Store, k: int, spec: PassageSpec = PassageSpec()
             ) -> list[Hit]:
    """The best `k` distinct passages from ranked chunk `hits` (best first).

    A hit that overlaps or touches an already chosen passage of the same article is folded
    into it; the passage keeps its best chunk's id and scores.
    """
    own = {h.chunk_id: h for h in hits}  # each chunk's text as searched
    chosen: list[Hit] = []
    for h in hits:
        for i, p in enumerate(chosen):
            if p.article_id == h.article_id and h.start <= p.end + 1 and h.end >= p.start - 1:
                start, end = min(p.start, h.start), max(p.end, h.end)
                if end - start <= spec.max_chars:
                    chosen[i] = replace(p, start=start, end=end)
                    break
        else:
            if len(chosen) < k + 2:  # spares: widening may fold two passages into one
                chosen.append(h)  # too far to fold in: its own passage (made disjoint below)
    if spec.neighbors <= 0:
        return [replace(_with_text(p, store, own[p.chunk_id]), rank=n)
                for n, p in enumerate(chosen[:k], start=1)]
    out = []
    for p in chosen:
        start, end = p.start, p.end
        for a, b in store.neighbor_spans(p.chunk_id, spec.neighbors):
            if min(start, a) < start and max(end, b) - min(start, a) <= spec.max_chars:
                start = min(start, a)
            if max(end, b) > end and max(end, b) - start <= spec.max_chars:
                end = max(end, b)
        out.append(replace(p, start=start, end=end))
    # Widening can make two passages of one article overlap: fold those too.
    merged: list[Hit] = []
    for p in out:
        for i, q in enumerate(merged):
            if q.article_id != p.article_id or p.start >= q.end or p.end <= q.start:
                continue
            lo, hi = min(q.start, p.start), max(q.end, p.end)
            if hi - lo <= spec.max_chars:
                merged[i] = replace(q, start=lo, end=hi)
                p = None  # type: ignore[assignment]
            elif p.start < q.start:
                p = replace(p, end=q.start)  # keep the two disjoint
            else:
                p = replace(p, start=q.end)
            if p is None or p.end <= p.start:
                p = None  # type: ignore[assignment]
                break
        if p is not None:
            merged.append(p)
    return [replace(_with_text(p, store, own[p.chunk_id]), rank=n)
            for n, p in enumerate(merged[:k], start=1)]


def _with_text(p: Hit, store: Store, chunk: Hit) -> Hit:
    """The passage's text from the article row, trimmed of surrounding whitespace.

    If the article was rewritten after this search's version (an update is being written
    while we search), its row no longer matches the chunk's offsets: then the chunk as
    searched is the passage, never a mix of two versions.
    """
    text = store.article_slice(p.article_id, p.start, p.end)
    if text is None or text[chunk.start - p.start:chunk.end - p.start] != chunk.text:
        return replace(chunk, rank=p.rank)
    lead = len(text) - len(text.lstrip())
    trail = len(text) - len(text.rstrip())
    return replace(p, text=text.strip(), start=p.start + lead, end=p.end - trail)
