"""`Hit`: one retrieved passage with its article's metadata."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """A chunk returned by search. `text == article.text[start:end]`."""

    rank: int
    score: float
    article_id: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    path: str | None
    chunk_id: int
    text: str
    start: int
    end: int
    dense: float = 0.0  # cosine similarity of the query and the chunk
    lexical: float = 0.0  # BM25 score of the chunk (0 when no query term matched)
