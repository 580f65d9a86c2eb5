"""What the store's tables hold, as values: an article for listings, a chunk with its
article's fields, and what one write takes (`Upsert`), sentence vectors included.

The store writes sentence vectors as rows and `rag.index.sentences` reads them back: the
store asks only for a row (`SentenceRows`), so that module, not the store, knows blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rag.ingest.articles import Article
from rag.ingest.chunking import Chunk


class SentenceRows(Protocol):
    """One chunk's sentence vectors as the `sentences` table stores them
    (`rag.index.sentences.SentenceBlock`)."""

    @property
    def chars(self) -> int:
        """How many characters of each sentence were embedded."""
        ...

    def to_row(self) -> tuple[bytes, bytes, bytes]:
        """(spans, codes, scales) as stored."""
        ...


# An article with its chunks and their vectors, and optionally each chunk's sentence
# vectors (`rag.index.sentences`; None where not embedded).
Upsert = (tuple[Article, Sequence[Chunk], np.ndarray]
          | tuple[Article, Sequence[Chunk], np.ndarray, Sequence[SentenceRows | None]])


@dataclass(frozen=True)
class ArticleInfo:
    """An indexed article's metadata, for listings."""

    id: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    path: str | None
    content_hash: str
    chunks: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk row joined with its article's metadata."""

    id: int
    article_id: str
    start: int
    end: int
    text: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    path: str | None
