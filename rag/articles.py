"""Articles: reading files of every supported format into `Article` values.

(skeleton: loaders are being written)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Article:
    """One article. `text` is what chunks and citations index into (offsets are into it)."""

    id: str
    title: str
    text: str
    published: str | None = None  # ISO-8601 where the source gave a date
    source: str | None = None
    url: str | None = None
    path: str | None = None
    author: str | None = None
    content_hash: str = ""


@dataclass(frozen=True)
class Skipped:
    """A file (or a line of a JSONL file) that was not indexed, and why."""

    path: str
    reason: str
