"""What search and `answer()` return: `Hit`, `Citation`, `Answer` (frozen, JSON via asdict)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """Where a passage comes from: its article and the article's metadata.

    Shared by `Hit` and `Citation`, so a citation carries exactly what its hit knew."""

    article_id: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    path: str | None

    def origin(self) -> Source:
        """Just the source fields (a `Hit` or `Citation` narrowed to its `Source`)."""
        return Source(self.article_id, self.title, self.published, self.source, self.url,
                      self.path)


@dataclass(frozen=True, kw_only=True)
class Hit(Source):
    """A passage returned by search. `text == article.text[start:end]`."""

    rank: int
    score: float
    chunk_id: int
    text: str
    start: int
    end: int
    dense: float = 0.0  # cosine similarity of the query and the chunk
    lexical: float = 0.0  # BM25 score of the chunk (0 when no query term matched)


@dataclass(frozen=True, kw_only=True)
class Citation(Source):
    """Marker `[n]` in the answer text points here. `quote == article.text[start:end]`."""

    n: int
    quote: str
    start: int
    end: int
    chunk_id: int = -1
    chunk_start: int = 0  # the whole passage the quote sits in, for highlighting in context
    chunk_end: int = 0

    @classmethod
    def of(cls, hit: Hit, n: int, quote: str, start: int, end: int) -> Citation:
        """Citation `n` quoting `quote` (at article offsets `start:end`) from `hit`'s passage."""
        return cls(**vars(hit.origin()), n=n, quote=quote, start=start, end=end,
                   chunk_id=hit.chunk_id, chunk_start=hit.start, chunk_end=hit.end)


@dataclass(frozen=True)
class Short:
    """The short answer (a name, a number, a date...) that leads an answer.

    An exact span of citation `n`'s quote: `text == article.text[start:end]`, and
    `start`/`end` lie inside that citation's `start`/`end`, so it can be highlighted.
    """

    text: str
    n: int
    start: int
    end: int


@dataclass(frozen=True)
class Answer:
    """The answer text with inline `[n]` markers, its citations, and the hits it drew on."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    abstained: bool
    mode: str = "extractive"
    confidence: float = 0.0
    dropped: tuple[str, ...] = field(default=())  # LLM sentences removed as unsupported
    notes: tuple[str, ...] = field(default=())  # e.g. "LLM endpoint down; extractive answer"
    short: Short | None = None  # the short answer, for who/where/when/how-many questions
