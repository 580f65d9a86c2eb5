"""Sharded search: the FAISS + BM25 state split into partitions of one store version.

Past one machine's memory the search structures are split; the SQLite store stays the
one source of truth. Shard `i` holds a contiguous range of live chunk ids, so the shards'
ids concatenate in ascending order and the merged objects below are what
`rag.retrieve.fusion.search` asks of `Vectors` and `Lexical`: the dense side merges every
shard's top k into one ranking, and BM25 is scored with corpus-wide statistics (document
frequency summed over shards, one average length), so a term's idf and a row's length
normalisation are exactly those of a single index. Fusion then runs once, over the merged
candidates. With exact (flat) shards the ranking equals one exact index's.

On disk each shard is `vectors-V.sI.faiss` + `bm25-V.sI/`, all listed in the manifest
under "shards" (`rag.index.derived` writes them, and `reshard` splits an index); the
manifest swap makes a sharded index old-or-new like any other. Shards are loaded in this
process (serving them from Ray actors is the next step: the merge below is what the
caller would do with the actors' answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import InputError
from rag.index.lexical import Lexical, bm25
from rag.index.store import Store
from rag.index.vectors import Vectors

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
        return False  # a write re-derives the shards from the store (see `build`)


class ShardedLexical:
    """`Lexical` over shards, scored with the whole corpus's statistics."""

    def __init__(self, shards: Sequence[Lexical]) -> None:
        self.shards = list(shards)
        self.ids = (np.concatenate([s.ids for s in self.shards]) if self.shards
                    else np.zeros(0, np.int64))
        if len(self.ids) > 1 and not bool(np.all(np.diff(self.ids) > 0)):
            raise ValueError("shards must hold ascending, disjoint chunk id ranges")
        self.n_live = sum(s.n_live for s in self.shards)
        total = sum(s.live_length() for s in self.shards)
        # Each shard's length normalisation, against the whole corpus's average length.
        self._norms = [s.length_norms(total / self.n_live if self.n_live else 1.0)
                       for s in self.shards]

    @property
    def live_ids(self) -> np.ndarray:
        return np.concatenate([s.live_ids for s in self.shards]) if self.shards else self.ids

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row of every shard (zeros where no term matched); equal to
        `Lexical.scores` of one index over the same chunks."""
        return bm25(query, self.shards, self._norms, self.n_live)


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


def build(store: Store, dim: int, kind: str, shards: int
          ) -> tuple[ShardedVectors, ShardedLexical]:
    """`shards` partitions of the store's live chunks (contiguous id ranges)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise InputError(f"--shards must be between 1 and {MAX_SHARDS}")
    _, n = store.counts()
    sizes = shard_sizes(n, shards)
    vecs = [Vectors.build(dim, kind, group, size)
            for group, size in zip(_split(store.iter_live_vectors(), sizes), sizes)]
    lex = [Lexical.build(group) for group in _split(store.iter_live_texts(), sizes)]
    return ShardedVectors(vecs), ShardedLexical(lex)


def load(path: Path, manifest: dict[str, Any]) -> tuple[ShardedVectors, ShardedLexical]:
    """The shards a manifest lists (raises if any is missing or unreadable)."""
    listed = manifest["shards"]
    vecs = [Vectors.load(path / s["vectors"], manifest["kind"]) for s in listed]
    lex = [Lexical.load(path / s["bm25"]) for s in listed]
    return ShardedVectors(vecs), ShardedLexical(lex)


__all__ = ["MAX_SHARDS", "ShardedLexical", "ShardedVectors", "build", "load", "shard_sizes"]
