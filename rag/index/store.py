"""The SQLite store: articles, chunks and their vectors, the index's source of truth.

Every change is one SQLite transaction that also bumps `version`, so a process
killed mid-write leaves the previous state. FAISS and BM25 files are caches
derived from this store and tagged with the version they were built from.
Removed rows are tombstoned (`deleted` = the version that removed them) and purged
one write later. A reader pins the version it serves: `Store(path, pinned=True)` holds one
SQLite read transaction, so every read through it (chunks, articles, counts) sees that
version whatever commits or purges come after (`rag.index.reads.State.view`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError, IndexWriteError
from rag.faults import checkpoint
from rag.index.rows import ArticleInfo, SentenceRows, StoredChunk, Upsert
from rag.ingest.articles import Article

FORMAT = 1
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's lock before it says so

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, published TEXT,
    source TEXT, url TEXT, path TEXT, author TEXT, content_hash TEXT NOT NULL,
    deleted INTEGER
);
CREATE INDEX IF NOT EXISTS articles_hash ON articles(content_hash);
CREATE INDEX IF NOT EXISTS articles_path ON articles(path);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL, ord INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
    vector BLOB NOT NULL, deleted INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS sentences (
    chunk_id INTEGER PRIMARY KEY, spans BLOB NOT NULL, codes BLOB NOT NULL,
    scales BLOB NOT NULL
);
"""


class _NothingWritten(Exception):
    """Rolls back a transaction that changed nothing (no version bump)."""


def _set_up(db: sqlite3.Connection, wait_s: float = BUSY_TIMEOUT_S) -> None:
    """WAL mode and the schema. Two processes creating the same new index at once: the
    switch to WAL fails with "database is locked" at once, without SQLite's busy timeout
    (reproduced here 3 times in 800 paired opens), so retry it for as long as that timeout."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_SCHEMA)


class Store:
    """A connection to `store.sqlite`. One writer at a time (the index holds a file lock)."""

    def __init__(self, path: Path, *, readonly: bool = False, pinned: bool = False) -> None:
        self.path = path
        try:
            self.db = _connect_readonly(path) if readonly else \
                sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            if pinned:  # one read transaction from here on: this connection never moves
                self.db.execute("BEGIN")
            elif not readonly:
                _set_up(self.db)
            self.db.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.OperationalError as e:
            # Read-only, full or locked: the file is fine, so never suggest rebuilding it.
            if readonly:
                raise IndexCorruptError(
                    f"cannot read {path} ({e}); check that the index folder and its files "
                    "are readable") from e
            raise IndexWriteError(
                f"cannot open {path} for writing ({e}); make the index folder writable and "
                "free disk space, or choose another folder with --index (the index is intact)"
            ) from e
        except sqlite3.DatabaseError as e:
            raise IndexCorruptError(
                f"cannot read {path} ({e}); move the index folder away and rebuild it "
                "with `rag index PATH --index DIR`"
            ) from e

    def close(self) -> None:
        self.db.close()

    # -- metadata -------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    @property
    def version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        return int(row[0]) if row else 0

    def init_meta(self, model: str, dim: int, chunking: dict[str, int],
                  fingerprint: str | None = None, sentences: bool = False) -> None:
        """A new index's identity (`rag.index.model`'s fingerprint; `rag.index.sentences`)."""
        with self.db:
            for key, value in (
                ("format", str(FORMAT)), ("model", model), ("dim", str(dim)),
                ("chunking", json.dumps(chunking, sort_keys=True)), ("version", "0"),
                ("fingerprint", fingerprint), ("sentences", "1" if sentences else "0")):
                if value is not None:
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    # -- reads ----------------------------------------------------------------------------
    def article_hashes(self) -> dict[str, str]:
        """Live article id -> content hash."""
        rows = self.db.execute("SELECT id, content_hash FROM articles WHERE deleted IS NULL")
        return dict(rows.fetchall())

    def article_paths(self) -> dict[str, str | None]:
        rows = self.db.execute("SELECT id, path FROM articles WHERE deleted IS NULL")
        return dict(rows.fetchall())

    def article(self, article_id: str) -> Article | None:
        # A removed article (soft-deleted until compaction) is not in the index: an old
        # answer's card must say it is gone rather than show the removed text.
        row = self.db.execute(
            "SELECT id, title, text, published, source, url, path, author, content_hash "
            "FROM articles WHERE id=? AND deleted IS NULL", (article_id,)
        ).fetchone()
        return Article(*row) if row else None

    def articles(self) -> list[ArticleInfo]:
        rows = self.db.execute(
            "SELECT a.id, a.title, a.published, a.source, a.url, a.path, a.content_hash, "
            "(SELECT count(*) FROM chunks c WHERE c.article_id=a.id AND c.deleted IS NULL) "
            "FROM articles a WHERE a.deleted IS NULL ORDER BY a.published DESC, a.title"
        )
        return [ArticleInfo(*r) for r in rows.fetchall()]

    def counts(self) -> tuple[int, int]:
        a = self.db.execute("SELECT count(*) FROM articles WHERE deleted IS NULL").fetchone()[0]
        c = self.db.execute("SELECT count(*) FROM chunks WHERE deleted IS NULL").fetchone()[0]
        return int(a), int(c)

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Chunks by id (tombstoned ones included: a reader may be one version behind)."""
        rows = self._rows_in(
            "SELECT c.id, c.article_id, c.start, c.\"end\", c.text, a.title, a.published, "
            "a.source, a.url, a.path FROM chunks c JOIN articles a ON a.id=c.article_id "
            "WHERE c.id IN ({})", ids)
        return {r[0]: StoredChunk(*r) for r in rows}

    def _rows_in(self, sql: str, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (whose `IN ({})` takes the ids), 500 ids per statement."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), 500):
            part = [int(x) for x in ids[i:i + 500]]
            out += self.db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return out

    def neighbor_spans(self, chunk_id: int, n: int) -> list[tuple[int, int]]:
        """(start, end) of the chunks within `n` positions of `chunk_id` in its article."""
        rows = self.db.execute(
            "SELECT c.start, c.\"end\" FROM chunks c JOIN chunks me ON me.id=? "
            "AND c.article_id=me.article_id AND c.ord BETWEEN me.ord-? AND me.ord+? "
            "AND (c.deleted IS NULL OR c.deleted=me.deleted) ORDER BY abs(c.ord-me.ord)",
            (int(chunk_id), n, n)).fetchall()
        return [(int(a), int(b)) for a, b in rows]

    def dead_chunks(self, ids: Sequence[int]) -> set[int]:
        """Those of `ids` that are tombstoned or purged in this store's version."""
        live = self._rows_in("SELECT id FROM chunks WHERE deleted IS NULL AND id IN ({})", ids)
        return {int(i) for i in ids} - {int(r[0]) for r in live}

    def article_slice(self, article_id: str, start: int, end: int) -> str | None:
        """`article.text[start:end]` without loading the whole text into Python."""
        row = self.db.execute("SELECT substr(text, ?, ?) FROM articles WHERE id=?",
                              (start + 1, end - start, article_id)).fetchone()
        return row[0] if row else None

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored vectors for chunk ids, in the order given."""
        got = dict(self._rows_in("SELECT id, vector FROM chunks WHERE id IN ({})", ids))
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for n, cid in enumerate(ids):
            if int(cid) in got:
                out[n] = np.frombuffer(got[int(cid)], dtype=np.float32)
        return out

    def iter_live_vectors(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of live chunks in id order, in batches, for FAISS (no texts)."""
        for rows in self._live_pages("c.vector FROM chunks c", batch):
            yield (np.array([r[0] for r in rows], dtype=np.int64),
                   np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))

    def iter_live_texts(self, batch: int = 20_000) -> Iterator[tuple[np.ndarray, list[str]]]:
        """(ids, title + text) of live chunks in id order, in batches, for BM25 (no vectors)."""
        for rows in self._live_pages(
                "a.title, c.text FROM chunks c JOIN articles a ON a.id=c.article_id", batch):
            yield (np.array([r[0] for r in rows], dtype=np.int64),
                   [f"{r[1]}\n{r[2]}" for r in rows])

    def _live_pages(self, select: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        last = -1
        while rows := self.db.execute(
                f"SELECT c.id, {select} WHERE c.deleted IS NULL AND c.id>? ORDER BY c.id "
                "LIMIT ?", (last, batch),
        ).fetchall():
            last = int(rows[-1][0])
            yield rows

    def texts(self, ids: Sequence[int]) -> list[str]:
        """Title + text of chunks by id, in the order given, as BM25 indexes them."""
        got = self.chunks(ids)
        return [f"{got[int(i)].title}\n{got[int(i)].text}" for i in ids]

    def filter_ids(
        self, after: str | None, before: str | None, sources: Sequence[str] | None
    ) -> np.ndarray:
        """Ids of live chunks whose article matches a date range / source filter."""
        where: list[str] = ["c.deleted IS NULL"]
        args: list[str | int] = []
        # Undated articles pass date filters (Filters says so): no date is not a wrong date.
        if after:
            where.append("(a.published IS NULL OR a.published = '' OR a.published >= ?)")
            args.append(after)
        if before:
            # Dates compare as ISO strings; "2024-11-26" must include that whole day.
            where.append("(a.published IS NULL OR a.published = '' "
                         "OR substr(a.published, 1, ?) <= ?)")
            args.extend([len(before), before])
        if sources:
            where.append(f"lower(a.source) IN ({','.join('?' * len(sources))})")
            args.extend(s.lower() for s in sources)
        rows = self.db.execute(
            "SELECT c.id FROM chunks c JOIN articles a ON a.id=c.article_id WHERE "
            + " AND ".join(where), args,
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    # -- writes ---------------------------------------------------------------------------
    def apply(
        self,
        upserts: Iterable[Upsert],
        removals: Iterable[str],
        moves: Mapping[str, Article] | None = None,
    ) -> tuple[int, list[int], list[int]]:
        """One transaction: replace/insert articles with their chunks, re-point `moves`
        (old id -> the same content at its new path, maybe under a new id: rows updated in
        place, nothing re-embedded), tombstone removals. `moves` is read after `upserts`.

        Returns (new version, ids of added chunks, ids of tombstoned chunks).
        """
        try:
            with self.db:
                version = self.version + 1
                # Purge what earlier writes tombstoned: readers have had a version to move on.
                self.db.execute("DELETE FROM sentences WHERE chunk_id IN (SELECT id FROM chunks "
                                "WHERE deleted IS NOT NULL AND deleted < ?)", (version,))
                self.db.execute("DELETE FROM chunks WHERE deleted IS NOT NULL AND deleted < ?",
                                (version,))
                self.db.execute("DELETE FROM articles WHERE deleted IS NOT NULL AND deleted < ?",
                                (version,))
                gone: list[int] = []
                added: list[int] = []
                changed = False
                # Upserts first: they may be produced lazily (embedded as they are consumed),
                # so a whole folder never sits in memory; removals may depend on what they saw.
                for item in upserts:
                    art, chunks, vecs = item[0], item[1], item[2]
                    sents = item[3] if len(item) == 4 else [None] * len(chunks)
                    changed = True
                    gone += self._tombstone_chunks(art.id, version)
                    self.db.execute(
                        "INSERT OR REPLACE INTO articles VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                        (art.id, art.title, art.text, art.published, art.source, art.url,
                         art.path, art.author, art.content_hash),
                    )
                    for ch, vec, block in zip(chunks, vecs, sents):
                        cur = self.db.execute(
                            "INSERT INTO chunks (article_id, ord, start, \"end\", text, vector) "
                            "VALUES (?,?,?,?,?,?)",
                            (art.id, ch.ord, ch.start, ch.end, ch.text,
                             np.ascontiguousarray(vec, dtype=np.float32).tobytes()),
                        )
                        added.append(int(cur.lastrowid or 0))
                        if block is not None:
                            self._put_sentences(added[-1], block)
                for old_id, art in (moves or {}).items():
                    changed = True
                    self._move(old_id, art)
                for article_id in removals:
                    changed = True
                    gone += self._tombstone_chunks(article_id, version)
                    self.db.execute("UPDATE articles SET deleted=? WHERE id=?", (version, article_id))
                if not changed:
                    raise _NothingWritten
                self.db.execute("UPDATE meta SET value=? WHERE key='version'", (str(version),))
                checkpoint("store_write")
        except _NothingWritten:
            return self.version, [], []
        except sqlite3.OperationalError as e:
            raise IndexWriteError(
                f"could not write {self.path} ({e}); free disk space or make the folder "
                "writable, then run the same command again (the previous index is intact)"
            ) from e
        return version, added, gone

    def _put_sentences(self, chunk_id: int, block: SentenceRows) -> None:
        # One sentence length per index: the first write records it, later ones keep it.
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('sentence_chars', ?)",
                        (str(block.chars),))
        self.db.execute("INSERT INTO sentences VALUES (?,?,?,?)", (chunk_id, *block.to_row()))

    def _move(self, old_id: str, art: Article) -> None:
        if art.id != old_id:  # chunks follow their article; a tombstone under the new id goes
            self.db.execute("DELETE FROM articles WHERE id=? AND deleted IS NOT NULL", (art.id,))
            self.db.execute("UPDATE chunks SET article_id=? WHERE article_id=? AND deleted IS NULL",
                            (art.id, old_id))
        self.db.execute(
            "UPDATE articles SET id=?, path=?, published=?, source=?, url=?, author=? "
            "WHERE id=? AND deleted IS NULL",
            (art.id, art.path, art.published, art.source, art.url, art.author, old_id))

    def rename_articles(self, pairs: dict[str, str]) -> dict[str, str]:
        """Give live articles new ids in place, chunks and vectors untouched (nothing is
        re-embedded); a new id already live is left alone. Returns old -> new as done."""
        live = set(self.article_hashes())
        done = {old: new for old, new in pairs.items() if new not in live}
        try:
            with self.db:
                for old, new in done.items():  # a tombstone under the new id goes early
                    self.db.execute("DELETE FROM articles WHERE id=? AND deleted IS NOT NULL",
                                    (new,))
                    self.db.execute("UPDATE articles SET id=? WHERE id=?", (new, old))
                    self.db.execute("UPDATE chunks SET article_id=? WHERE article_id=?",
                                    (new, old))
        except sqlite3.OperationalError as e:
            raise IndexWriteError(f"could not write {self.path} ({e}); free disk space and run "
                                  "the same command again (the index is unchanged)") from e
        return done

    def _tombstone_chunks(self, article_id: str, version: int) -> list[int]:
        ids = [r[0] for r in self.db.execute(
            "SELECT id FROM chunks WHERE article_id=? AND deleted IS NULL", (article_id,))]
        self.db.execute("UPDATE chunks SET deleted=? WHERE article_id=? AND deleted IS NULL",
                        (version, article_id))
        return ids


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection, also for a WAL database in a folder we cannot write.

    `mode=ro` still needs the WAL's `-shm` file; when the last writer closed cleanly that
    file is gone and a read-only folder cannot recreate it. Then open the file as
    immutable: nothing can change it through a read-only folder anyway.
    """
    from urllib.parse import quote

    uri = f"file:{quote(str(path.absolute()))}"
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    try:
        db.execute("SELECT count(*) FROM meta").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
