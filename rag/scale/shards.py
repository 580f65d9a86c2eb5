"""Sharded search: the FAISS + BM25 state split into partitions of one store version.

Past one machine's memory the search structures are split; the SQLite store stays the
one source of truth. Shard `i` holds a contiguous range of live chunk ids, so the shards'
ids concatenate in ascending order and the merged objects below stand in for `Vectors` and
`Lexical` inside `rag.retrieve.fusion.search` unchanged: the dense side merges every
shard's top k into one ranking, and BM25 is scored with corpus-wide statistics (document
frequency summed over shards, one average length), so a term's idf and a row's length
normalisation are exactly those of a single index. Fusion then runs once, over the merged
candidates. With exact (flat) shards the ranking equals one exact index's.

On disk each shard is `vectors-V.sI.faiss` + `bm25-V.sI/`, all listed in the manifest
under "shards"; the manifest swap makes a sharded index old-or-new like any other.
Shards are loaded in this process (serving them from Ray actors is the next step: the
merge below is what the caller would do with the actors' answers).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import IndexWriteError, InputError
from rag.faults import checkpoint
from rag.index.folder import WriteLock, fsync_file, modified_ns, write_json_atomic
from rag.index.lexical import Lexical, Segment, tokenize
from rag.index.store import FORMAT, Store
from rag.index.vectors import Vectors

if TYPE_CHECKING:
    from rag.index.derived import State
    from rag.index.facade import Index

MAX_SHARDS = 256  # more shards than this is a configuration mistake, not a layout


class ShardedVectors:
    """`Vectors` over shards: each shard's top k, merged into one ranking by score."""

    def __init__(self, shards: Sequence[Vectors]) -> None:
        self.shards = list(shards)
        self.kind = self.shards[0].kind if self.shards else "flat"

    @property
    def size(self) -> int:
        return sum(s.size for s in self.shards)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk ids) of the k nearest over all shards, best first (ties: lower
        id first)."""
        found = [s.search(query, k, allowed) for s in self.shards if s.size]
        if not found:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores = np.concatenate([f[0] for f in found])
        ids = np.concatenate([f[1] for f in found])
        order = np.lexsort((ids, -scores))[:k]
        return scores[order], ids[order]

    def remove(self, ids: np.ndarray) -> bool:
        return False  # a write re-derives the shards from the store (see `build_state`)


class ShardedLexical:
    """`Lexical` over shards, scored with the whole corpus's statistics."""

    def __init__(self, shards: Sequence[Lexical]) -> None:
        self.shards = list(shards)
        self.ids = (np.concatenate([s.ids for s in self.shards]) if self.shards
                    else np.zeros(0, np.int64))
        if len(self.ids) > 1 and not bool(np.all(np.diff(self.ids) > 0)):
            raise ValueError("shards must hold ascending, disjoint chunk id ranges")
        self.offsets = np.cumsum([0] + [len(s.ids) for s in self.shards])
        self.n_live = sum(s.n_live for s in self.shards)
        total = sum(int(s.lengths[s.alive].sum()) for s in self.shards)
        avgdl = total / self.n_live if self.n_live else 1.0
        # What `Lexical.__init__` computes for one index, with the corpus-wide average.
        self._norms = [(s.k1 * (1 - s.b + s.b * s.lengths / max(avgdl, 1e-9))).astype(np.float32)
                       for s in self.shards]

    @property
    def live_ids(self) -> np.ndarray:
        return np.concatenate([s.live_ids for s in self.shards]) if self.shards else self.ids

    @property
    def segments(self) -> tuple[Segment, ...]:
        """Every shard's segments, for callers counting document frequencies as on one
        index (`rag.answering.abstain`); their row numbers are each shard's own."""
        return tuple(seg for s in self.shards for seg in s.segments)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row of every shard (zeros where no term matched); equal to
        `Lexical.scores` of one index over the same chunks."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if not self.n_live:
            return out
        tokens = tokenize([query])[0]
        for term in dict.fromkeys(tokens):
            postings = [_live_postings(s, term) for s in self.shards]
            df = sum(len(rows) for rows, _ in postings)
            if not df:
                continue
            idf = np.log1p((self.n_live - df + 0.5) / (df + 0.5)) * tokens.count(term)
            for i, (rows, tf) in enumerate(postings):
                if len(rows):
                    tf = tf.astype(np.float32)
                    out[self.offsets[i] + rows] += np.float32(idf) * tf / (tf + self._norms[i][rows])
        return out


def _live_postings(lex: Lexical, term: str) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers (within the shard) and term frequencies of `term`'s live postings."""
    got = [p for s in lex.segments if (p := s.postings(term)) is not None]
    if not got:
        return np.zeros(0, np.int64), np.zeros(0, np.uint16)
    rows = np.concatenate([r for r, _ in got])
    tf = np.concatenate([t for _, t in got])
    if lex.dead:
        live = lex.alive[rows]
        rows, tf = rows[live], tf[live]
    return rows, tf


# -- building --------------------------------------------------------------------------------
def _split(batches: Iterable[tuple[np.ndarray, Any]], sizes: Sequence[int]
           ) -> Iterator[Iterator[tuple[np.ndarray, Any]]]:
    """`batches` (ids, rows) cut into consecutive groups of `sizes` rows, lazily; each group
    must be consumed before the next is asked for."""
    it = iter(batches)
    carry: tuple[np.ndarray, Any] | None = None

    def group(n: int) -> Iterator[tuple[np.ndarray, Any]]:
        nonlocal carry
        while n > 0:
            if carry is None:
                try:
                    carry = next(it)
                except StopIteration:
                    return
            ids, rows = carry
            if len(ids) <= n:
                carry = None
                n -= len(ids)
                yield ids, rows
            else:
                carry = (ids[n:], rows[n:])
                yield ids[:n], rows[:n]
                n = 0

    for n in sizes:
        yield group(n)


def shard_sizes(total: int, shards: int) -> list[int]:
    """Rows per shard: as equal as possible, the larger ones first.

    >>> shard_sizes(10, 4)
    [3, 3, 2, 2]
    """
    return [total // shards + (1 if i < total % shards else 0) for i in range(shards)]


def build_state(store: Store, dim: int, kind: str, shards: int, version: int) -> State:
    """`shards` partitions of the store's live chunks (contiguous id ranges)."""
    from rag.index.derived import State

    if not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"--shards must be between 1 and {MAX_SHARDS}")
    _, n = store.counts()
    sizes = shard_sizes(n, shards)
    vecs = [Vectors.build(dim, kind, group, size)
            for group, size in zip(_split(store.iter_live_vectors(), sizes), sizes)]
    lex = [Lexical.build(group) for group in _split(store.iter_live_texts(), sizes)]
    return State(version, ShardedVectors(vecs), ShardedLexical(lex), 0)  # type: ignore[arg-type]


def load(path: Path, manifest: dict[str, Any]) -> tuple[ShardedVectors, ShardedLexical]:
    """The shards a manifest lists (raises if any is missing or unreadable)."""
    listed = manifest["shards"]
    vecs = [Vectors.load(path / s["vectors"], manifest["kind"]) for s in listed]
    lex = [Lexical.load(path / s["bm25"]) for s in listed]
    return ShardedVectors(vecs), ShardedLexical(lex)


def persist(index: Index, state: State, store: Store | None = None) -> None:
    """Write every shard under new names, then swap the manifest listing them: a reader
    sees all shards of the old version or all of the new."""
    vecs: ShardedVectors = state.vectors  # type: ignore[assignment]
    lex: ShardedLexical = state.lexical  # type: ignore[assignment]
    listed = []
    try:
        for i, (v, b) in enumerate(zip(vecs.shards, lex.shards)):
            vname, bname = f"vectors-{state.version}.s{i}.faiss", f"bm25-{state.version}.s{i}"
            tmp_v, tmp_b = index.path / f".{vname}.tmp", index.path / f".{bname}.tmp"
            v.save(tmp_v)
            fsync_file(tmp_v)
            checkpoint("faiss_write")
            if tmp_b.exists():
                shutil.rmtree(tmp_b)
            b.save(tmp_b)
            checkpoint("bm25_write")
            os.replace(tmp_v, index.path / vname)
            if (index.path / bname).exists():
                shutil.rmtree(index.path / bname)
            os.replace(tmp_b, index.path / bname)
            b.moved_to(index.path / bname)
            listed.append({"vectors": vname, "bm25": bname, "chunks": int(b.n_live),
                           "first_id": int(b.ids[0]) if len(b.ids) else None})
        articles, chunks = (store or index.store).counts()
        write_json_atomic(index.path / "manifest.json", {
            "format": FORMAT, "model": index.model, "dim": index.dim,
            "chunking": asdict(index.chunking), "kind": vecs.kind,
            "requested": index.requested, "version": state.version, "shards": listed,
            "articles": articles, "chunks": chunks,
        })
    except OSError as e:
        raise IndexWriteError(
            f"could not write the shard files in {index.path} ({e}); the articles are saved "
            "and the files are rebuilt from the store when the index is next opened: free "
            "disk space and run the same command again") from e
    index.kind = vecs.kind
    keep = {n for s in listed for n in (s["vectors"], s["bm25"])}
    for old in index.path.iterdir():
        if old.name.startswith(("vectors-", "bm25-", ".vectors-", ".bm25-")) and \
                old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def reshard(index: Index, shards: int, *, kind: str | None = None,
            lock_timeout: float = 10.0) -> None:
    """Split `index`'s search state into `shards` partitions of its current store version
    (1: back to one partition). Later writes keep the count."""
    from rag.index.derived import persist as persist_one

    with WriteLock(index.path, timeout=lock_timeout):
        writer = Store(index.path / "store.sqlite")
        try:
            version = writer.version
            k = kind or ("auto" if index.requested == "auto" else index.kind)
            if shards == 1:
                state = build_state(writer, index.dim, k, 1, version)
                state.vectors = state.vectors.shards[0]  # type: ignore[attr-defined]
                state.lexical = state.lexical.shards[0]  # type: ignore[attr-defined]
                persist_one(index, state, writer)
            else:
                state = build_state(writer, index.dim, k, shards, version)
                persist(index, state, writer)
            state.manifest_mtime = modified_ns(index.path / "manifest.json")
            with index._lock:
                index._state = state
        finally:
            writer.close()


def is_sharded(vectors: object) -> bool:
    return isinstance(vectors, ShardedVectors)


__all__ = ["ShardedLexical", "ShardedVectors", "build_state", "is_sharded", "load", "persist",
           "reshard", "shard_sizes"]
