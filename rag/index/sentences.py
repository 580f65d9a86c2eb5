"""Sentence vectors stored at index time, where an index is built to keep them.

The extractive answerer once scored the sentences of the top passages by meaning, and
embedding a dozen of them per question was most of an answer's time; so each article's
sentences were embedded once when it was indexed and stored with the chunk that first
holds them whole, in the same SQLite transaction as the chunk (chunk ids are never
reused, so a stored sentence can never point into another version of an article).
Answers now come from the reader, which reads passages, not sentence vectors, and the
sentences added 83 % to indexing time: an index stores them only when built with
`rag index --sentences` (`Index.open(..., sentences=True)`). The choice is recorded in
the store's meta and the manifest, and every later write of the index keeps it.

Vectors are stored as int8 with one float32 scale per sentence: 384 + 4 bytes, plus 8 for
the span. Measured on news-dev (1,623 articles, 27k chunks): cosine of the int8 vector to
the fp32 one >= 0.9999 (see tests), i.e. sentence scores move by < 1e-4; fp16 would be
twice the size for no measurable gain in the answer.

A sentence is looked up by its exact (article id, start, end): one the answerer splits
differently from the article (at a passage's cut edge), or an index written before this
existed, simply has no stored vector, and the caller embeds it as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.ingest.sentences import split_sentences

if TYPE_CHECKING:
    from rag.index.store import Store
    from rag.ingest.chunking import Chunk
    from rag.results import Hit

# The answerer embeds a sentence's first 300 characters (`extractive.SENTENCE_CHARS`); an
# index records the length it stored with, and a caller asking for another gets nothing.
SENTENCE_CHARS = 300
_INT8_MAX = 127.0

SentenceKey = tuple[str, int, int]  # (article id, start, end) in article offsets


def recorded(meta: Mapping[str, str]) -> bool:
    """Whether the index whose store meta is `meta` stores sentence vectors: its recorded
    choice; an index written before the choice was recorded stores them where it has any
    (the first stored block records `sentence_chars`), as it did when it was written.

    >>> recorded({"sentences": "0"}), recorded({"sentence_chars": "300"}), recorded({})
    (False, True, False)
    """
    if "sentences" in meta:
        return meta["sentences"] == "1"
    return "sentence_chars" in meta


class SentenceVectors(Protocol):
    """Where an answerer finds stored sentence vectors (an `Index`)."""

    def sentence_vectors(self, hits: Sequence[Hit], chars: int) -> Mapping[SentenceKey, np.ndarray]:
        ...


@dataclass(frozen=True)
class SentenceBlock:
    """One chunk's stored sentences: spans in article offsets, int8 codes, a scale each."""

    spans: np.ndarray  # (n, 2) int32
    codes: np.ndarray  # (n, dim) int8
    scales: np.ndarray  # (n,) float32
    chars: int = SENTENCE_CHARS

    @classmethod
    def quantize(cls, spans: Sequence[tuple[int, int]], vectors: np.ndarray,
                 chars: int = SENTENCE_CHARS) -> SentenceBlock:
        """A block from fp32 rows: each row scaled so its largest component is +-127.

        >>> b = SentenceBlock.quantize([(0, 3)], np.array([[0.6, -0.8]], np.float32))
        >>> b.codes.tolist(), [round(float(x), 3) for x in b.vectors()[0]]
        ([[95, -127]], [0.598, -0.8])
        >>> SentenceBlock.quantize([], np.zeros((0, 2), np.float32)).codes.shape
        (0, 2)
        """
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2:  # a chunk with no whole sentence (a cut over-long one) has none
            vecs = vecs.reshape(len(spans), -1) if len(spans) else np.zeros((0, 0), np.float32)
        peak = np.abs(vecs).max(axis=1) if len(vecs) else np.zeros(0, np.float32)
        scales = np.where(peak > 0, peak / _INT8_MAX, 1.0).astype(np.float32)
        codes = np.rint(vecs / scales[:, None]).clip(-_INT8_MAX, _INT8_MAX).astype(np.int8)
        return cls(np.asarray(spans, dtype=np.int32).reshape(-1, 2), codes, scales, chars)

    def vectors(self) -> np.ndarray:
        """The fp32 rows back (not re-normalised: the int8 error is below 1e-3 per row)."""
        out: np.ndarray = self.codes.astype(np.float32) * self.scales[:, None]
        return out

    def to_row(self) -> tuple[bytes, bytes, bytes]:
        return self.spans.tobytes(), self.codes.tobytes(), self.scales.tobytes()

    @classmethod
    def from_row(cls, spans: bytes, codes: bytes, scales: bytes, dim: int,
                 chars: int) -> SentenceBlock:
        return cls(np.frombuffer(spans, np.int32).reshape(-1, 2),
                   np.frombuffer(codes, np.int8).reshape(-1, dim),
                   np.frombuffer(scales, np.float32), chars)

    @property
    def nbytes(self) -> int:
        return int(self.spans.nbytes + self.codes.nbytes + self.scales.nbytes)


def chunk_sentences(text: str, chunks: Sequence[Chunk]) -> list[list[tuple[int, int]]]:
    """Each article sentence once, with the first chunk that holds it whole (overlapping
    chunks share sentences; storing them once keeps the bytes per chunk down).

    >>> from rag.ingest.chunking import Chunk
    >>> t = "One. Two. Three."
    >>> chunk_sentences(t, [Chunk("a", 0, 0, 9, t[:9]), Chunk("a", 1, 5, 16, t[5:])])
    [[(0, 4), (5, 9)], [(10, 16)]]
    """
    out: list[list[tuple[int, int]]] = [[] for _ in chunks]
    # Chunks and sentences both run through the text in order, so one pass over each
    # finds every sentence's first holding chunk (a scan of all chunks per sentence was
    # quadratic: a 50 MB article took longer than the whole test suite).
    order = sorted(range(len(chunks)), key=lambda n: (chunks[n].end, n))
    first = 0
    for a, b in split_sentences(text):
        while first < len(order) and chunks[order[first]].end < b:
            first += 1  # ends before this sentence does: holds neither it nor any later one
        # Chunk starts rise with their ends: the first chunk ending at or after b has the
        # earliest start of all that could hold the sentence.
        if first < len(order) and chunks[order[first]].start <= a:
            out[order[first]].append((a, b))
    return out


def embed_blocks(
    embed: Callable[[list[str]], np.ndarray],
    articles: Sequence[tuple[str, Sequence[Chunk]]],
    chars: int = SENTENCE_CHARS,
) -> list[list[SentenceBlock]]:
    """Sentence blocks for each (article text, chunks), in one `embed` call."""
    plans = [chunk_sentences(text, chunks) for text, chunks in articles]
    texts = [text[a:b][:chars] for (text, _), plan in zip(articles, plans)
             for spans in plan for a, b in spans]
    vecs = embed(texts) if texts else np.zeros((0, 0), np.float32)
    out: list[list[SentenceBlock]] = []
    n = 0
    for plan in plans:
        blocks = []
        for spans in plan:
            blocks.append(SentenceBlock.quantize(spans, vecs[n:n + len(spans)], chars))
            n += len(spans)
        out.append(blocks)
    return out


def _stored_blocks(store: Store, chunk_id: int, start: int, end: int,
                   dim: int, chars: int) -> list[SentenceBlock]:
    """Stored sentences of the chunks overlapping `start:end` in `chunk_id`'s article,
    from the same version of it (chunks tombstoned together share `deleted`)."""
    try:
        rows = store.db.execute(
            "SELECT s.spans, s.codes, s.scales FROM chunks me JOIN chunks c "
            "ON c.article_id=me.article_id AND c.deleted IS me.deleted "
            "JOIN sentences s ON s.chunk_id=c.id "
            "WHERE me.id=? AND c.start < ? AND c.\"end\" > ?",
            (int(chunk_id), int(end), int(start))).fetchall()
    except sqlite3.OperationalError:  # written before sentence vectors (read-only copy)
        return []
    return [SentenceBlock.from_row(a, b, c, dim, chars) for a, b, c in rows]


def stored_vectors(store: Store, hits: Sequence[Hit], dim: int,
                   chars: int) -> dict[SentenceKey, np.ndarray]:
    """Stored vectors of the sentences inside `hits`, keyed by (article id, start, end).

    Sentences with nothing stored (an older index, another `chars`) are absent."""
    row = store.db.execute("SELECT value FROM meta WHERE key='sentence_chars'").fetchone()
    if row is None or int(row[0]) != chars:  # none stored, or each of another length
        return {}
    out: dict[SentenceKey, np.ndarray] = {}
    for h in hits:
        for block in _stored_blocks(store, h.chunk_id, h.start, h.end, dim, chars):
            inside = (block.spans[:, 0] >= h.start) & (block.spans[:, 1] <= h.end)
            if not inside.any():
                continue
            vecs = block.vectors()
            for (a, b), v in zip(block.spans[inside].tolist(), vecs[inside]):
                out[(h.article_id, int(a), int(b))] = v
    return out


def sentence_matrix(keys: Sequence[SentenceKey], texts: Sequence[str], embed: Callable[
        [list[str]], np.ndarray], hits: Sequence[Hit], stored: SentenceVectors | None,
        chars: int = SENTENCE_CHARS) -> np.ndarray:
    """One row per sentence: its stored vector where the index has it, else `embed`ded
    now from `text[:chars]` (an older index, a sentence split at a passage's edge)."""
    known = stored.sentence_vectors(hits, chars) if stored is not None and keys else {}
    rows: list[np.ndarray | None] = [known.get(k) for k in keys]
    missing = [i for i, v in enumerate(rows) if v is None]
    if missing:
        for i, v in zip(missing, embed([texts[i][:chars] for i in missing])):
            rows[i] = v
    return np.stack([np.asarray(r, np.float32) for r in rows if r is not None]) if rows else \
        np.zeros((0, 0), np.float32)


def backfill(store: Store, embed: Callable[[list[str]], np.ndarray],
             chars: int = SENTENCE_CHARS, batch: int = 16) -> int:
    """Store sentence vectors for live chunks that have none (an index written before they
    existed) without re-embedding the chunks; `batch` articles per transaction. The caller
    holds the index's write lock. Rows are only added, for chunk ids that never change, so
    readers need no new version. Returns the number of chunks filled."""
    from rag.ingest.chunking import Chunk

    chars = int(store.meta().get("sentence_chars", chars))
    need = [str(r[0]) for r in store.db.execute(
        "SELECT DISTINCT c.article_id FROM chunks c LEFT JOIN sentences s ON s.chunk_id=c.id "
        "WHERE c.deleted IS NULL AND s.chunk_id IS NULL")]
    done = 0
    for i in range(0, len(need), batch):
        todo: list[tuple[str, list[Chunk], list[int]]] = []
        for article_id in need[i:i + batch]:
            art = store.article(article_id)
            rows = store.db.execute(
                "SELECT id, ord, start, \"end\" FROM chunks WHERE article_id=? AND deleted IS NULL "
                "ORDER BY ord", (article_id,)).fetchall()
            if art is not None and rows:
                todo.append((art.text, [Chunk(article_id, o, a, b, art.text[a:b])
                                        for _, o, a, b in rows], [int(r[0]) for r in rows]))
        blocks = embed_blocks(embed, [(text, chunks) for text, chunks, _ in todo], chars)
        with store.db:
            store.db.execute("INSERT OR IGNORE INTO meta VALUES ('sentence_chars', ?)",
                             (str(chars),))
            for (_, _, ids), art_blocks in zip(todo, blocks):
                for cid, block in zip(ids, art_blocks):
                    done += store.db.execute("INSERT OR IGNORE INTO sentences VALUES (?,?,?,?)",
                                             (cid, *block.to_row())).rowcount
    return done
