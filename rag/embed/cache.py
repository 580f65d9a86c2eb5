"""A content-addressed cache of embedded vectors: work already embedded survives a kill.

An index update commits in one transaction, so a run killed before its commit keeps
nothing in the store. Its embedding work lands here instead, batch by batch, as each
batch finishes: the next run looks every text up first and embeds only what is missing.

- Keyed by model, precision and the exact embedded text (title header included), so a
  vector is never reused for another model or another text.
- Its own SQLite file beside the store, written outside the index's transaction: a write
  here is atomic (a half-written batch is simply not there), and a row whose checksum or
  length does not match is ignored.
- Never a source of truth: any error reading or writing it only disables it for the run,
  and the index's old-or-new promise does not depend on it.
- Bounded: past `max_bytes` the entries already committed to the store go first, oldest
  first; the store holds those vectors anyway.

`cached_embed(embedder, texts, cache)` is the one call every indexing path makes (the
Ray embedding actors too: each opens `VectorCache(path, model)` on the index's file).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FILE = "vector-cache.sqlite"

# 512 MiB holds ~340k MiniLM vectors (384 float32 + ~80 bytes of key and row): a kill
# anywhere in a ~60k-article build loses no embedding work. Beyond that, entries already
# committed to the store are dropped first.
MAX_CACHE_BYTES = 512 * 2**20
_ROW_OVERHEAD = 80  # key, checksum, stamps and SQLite's per-row cost, roughly
# Texts per model call and cache write: a kill loses at most this much work in flight.
# The model embeds 8 at a time anyway; 64 stays above bf16's bulk threshold (32).
CACHE_SLICE = 64
_IN_LIST = 500  # keys per `IN (...)` query (SQLite's default limit is 999 variables)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key BLOB PRIMARY KEY, vec BLOB NOT NULL, crc INTEGER NOT NULL,
    used INTEGER NOT NULL, committed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS vectors_evict ON vectors(committed, used);
"""


def cache_key(model: str, precision: str, text: str) -> bytes:
    """128 bits of sha256 over model, precision and text: collisions are not a concern."""
    h = hashlib.sha256(f"{model}\0{precision}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()[:16]


def precisions(embedder: Any, n: int) -> tuple[str, ...]:
    """The precisions `embedder` may use for a call of `n` texts, the likeliest first.

    The fp32 embedders time bf16 against fp32 on their first bulk calls and keep the
    faster (cosine between the two >= 0.9999), so one index already holds both: a cached
    vector of either precision is as good as a fresh one."""
    own = str(getattr(embedder, "precision", "fp32"))
    bulk_bf16 = getattr(embedder, "bulk_bf16", None)
    if bulk_bf16 is None or own != "fp32":  # int8 is a model of its own, never bf16
        return (own,)
    from rag.embed.embedder import BF16_MIN_BATCH

    first = "bf16" if n >= BF16_MIN_BATCH and bulk_bf16() else "fp32"
    return (first, "fp32" if first == "bf16" else "bf16")


class VectorCache:
    """The cache file of one index. Safe to use from several processes at once."""

    def __init__(self, path: Path, model: str, dim: int, *,
                 max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.path, self.model, self.dim = path, model, dim
        self.max_rows = max(1, max_bytes // (dim * 4 + _ROW_OVERHEAD))
        self.hits = self.misses = 0
        self._db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a power cut may lose the last batches (they are re-embedded), never
            # corrupt the file.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        except sqlite3.Error:
            self._broken()

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def _broken(self) -> None:
        """A cache that fails is switched off for this run: it only ever saves work."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    def close(self) -> None:
        self._broken()

    def get(self, texts: Sequence[str],
            precs: Sequence[str]) -> list[tuple[np.ndarray, bytes] | None]:
        """(cached vector, its key) for each text, trying `precs` in order; None if absent."""
        out: list[tuple[np.ndarray, bytes] | None] = [None] * len(texts)
        if self._db is None:
            return out
        try:
            for prec in precs:
                todo: dict[bytes, list[int]] = {}  # a text may come more than once
                for i, got in enumerate(out):
                    if got is None:
                        todo.setdefault(cache_key(self.model, prec, texts[i]), []).append(i)
                for key, vec in self._lookup(list(todo)):
                    for i in todo[key]:
                        out[i] = (np.frombuffer(vec, dtype=np.float32), key)
        except sqlite3.Error:
            self._broken()
            return [None] * len(texts)
        found = sum(1 for o in out if o is not None)
        self.hits += found
        self.misses += len(texts) - found
        return out

    def _lookup(self, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        assert self._db is not None
        rows: list[tuple[bytes, bytes]] = []
        for s in range(0, len(keys), _IN_LIST):
            part = keys[s:s + _IN_LIST]
            rows += [(bytes(k), v) for k, v, crc in self._db.execute(
                f"SELECT key, vec, crc FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                part)
                if len(v) == self.dim * 4 and zlib.crc32(v) == crc]  # else: ignore the row
        return rows

    def put(self, texts: Sequence[str], vectors: np.ndarray, precision: str) -> list[bytes]:
        """Store one finished batch (one transaction); returns its keys."""
        keys = [cache_key(self.model, precision, t) for t in texts]
        if self._db is None or not texts:
            return keys
        now = time.time_ns()
        rows = []
        for k, v in zip(keys, np.ascontiguousarray(vectors, dtype=np.float32)):
            b = v.tobytes()
            rows.append((k, b, zlib.crc32(b), now))
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vec, crc, used) VALUES (?,?,?,?)", rows)
            self._evict()
        except sqlite3.Error:  # a full disk here must not fail the index update
            self._broken()
        return keys

    def committed(self, keys: Sequence[bytes]) -> None:
        """Mark entries whose vectors the store now holds: they are evicted first."""
        if self._db is None:
            return
        try:
            with self._db:
                for s in range(0, len(keys), _IN_LIST):
                    part = list(keys[s:s + _IN_LIST])
                    self._db.execute(
                        f"UPDATE vectors SET committed=1 WHERE key IN ({','.join('?' * len(part))})",
                        part)
        except sqlite3.Error:
            self._broken()

    def _evict(self) -> None:
        assert self._db is not None
        (n,) = self._db.execute("SELECT count(*) FROM vectors").fetchone()
        if n <= self.max_rows:
            return
        with self._db:
            self._db.execute(
                "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors "
                "ORDER BY committed DESC, used ASC LIMIT ?)", (n - self.max_rows,))


def cached_embed(embedder: Any, texts: Sequence[str],
                 cache: VectorCache | None) -> tuple[np.ndarray, list[bytes], int]:
    """Embed `texts`, taking what `cache` already holds and storing the rest in it.

    Returns (vectors in order, the cache keys of all texts, how many texts the model
    embedded). Without a cache it is `embedder.embed(texts)`."""
    dim = int(embedder.dim)
    if not texts:
        return np.zeros((0, dim), np.float32), [], 0
    if cache is None or not cache.enabled:
        return np.asarray(embedder.embed(list(texts)), dtype=np.float32), [], len(texts)
    got = cache.get(texts, precisions(embedder, len(texts)))
    missing = [i for i, g in enumerate(got) if g is None]
    out = np.zeros((len(texts), dim), np.float32)
    keys: list[bytes] = [g[1] if g is not None else b"" for g in got]
    for i, g in enumerate(got):
        if g is not None:
            out[i] = g[0]
    if missing:
        todo = list(dict.fromkeys(texts[i] for i in missing))  # each text embedded once
        done: dict[str, tuple[np.ndarray, bytes]] = {}
        for s in range(0, len(todo), CACHE_SLICE):  # stored as each slice finishes
            part = todo[s:s + CACHE_SLICE]
            prec = precisions(embedder, len(part))[0]  # decided before the call changes it
            vecs = np.asarray(embedder.embed(part), dtype=np.float32)
            for t, v, k in zip(part, vecs, cache.put(part, vecs, prec)):
                done[t] = (v, k)
        for i in missing:
            out[i], keys[i] = done[texts[i]]
        return out, keys, len(todo)
    return out, keys, len(missing)


__all__ = ["CACHE_FILE", "MAX_CACHE_BYTES", "VectorCache", "cache_key", "cached_embed"]
