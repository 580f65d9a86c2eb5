"""The FAISS side: inner-product search over normalised chunk vectors, keyed by chunk id.

`flat` is exact. `ivf` (IVF with 8-bit scalar quantisation) keeps 1M x 384 vectors in
~400 MB and supports removal, so it is chosen automatically past `AUTO_IVF_AT` chunks.
`hnsw` is selectable; it cannot remove vectors, so a removal rebuilds it from the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("auto", "flat", "ivf", "hnsw")
AUTO_IVF_AT = 200_000


def choose_kind(kind: str, n: int) -> str:
    """The concrete kind for `kind` at `n` vectors.

    >>> choose_kind("auto", 1000), choose_kind("auto", 1_000_000), choose_kind("hnsw", 5)
    ('flat', 'ivf', 'hnsw')
    """
    if kind == "auto":
        return "ivf" if n >= AUTO_IVF_AT else "flat"
    return kind


class Vectors:
    """A FAISS index of chunk vectors."""

    def __init__(self, index: Any, kind: str) -> None:  # faiss objects are untyped
        self.index = index
        self.kind = kind

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, dim: int, kind: str, batches: Iterable[tuple[np.ndarray, np.ndarray]],
              n: int) -> Vectors:
        """Build from (ids, vectors) batches; `n` is the total (it sizes IVF's lists)."""
        import faiss

        kind = choose_kind(kind, n)
        index: Any
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            for ids, vecs in batches:
                index.add_with_ids(vecs, ids)
            return cls(index, kind)
        if kind == "hnsw":
            index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT))
            index.index.hnsw.efConstruction = 80
            index.index.hnsw.efSearch = 128
            for ids, vecs in batches:
                index.add_with_ids(vecs, ids)
            return cls(index, kind)
        # IVF: train on a sample, then stream the rest in.
        nlist = max(16, min(65536, int(4 * math.sqrt(max(n, 1)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        seen = 0
        need = min(n, max(nlist * 40, 10_000))
        for ids, vecs in batches:
            if not index.is_trained:
                pending.append((ids, vecs))
                seen += len(ids)
                if seen >= need:
                    index.train(np.concatenate([v for _, v in pending])[:need])
                    for i, v in pending:
                        index.add_with_ids(v, i)
                    pending = []
            else:
                index.add_with_ids(vecs, ids)
        if pending:
            sample = np.concatenate([v for _, v in pending])
            if len(sample) < nlist:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
                kind = "flat"
            else:
                index.train(sample)
            for i, v in pending:
                index.add_with_ids(v, i)
        out = cls(index, kind)
        out.set_nprobe(nlist)
        return out

    def set_nprobe(self, nlist: int) -> None:
        if self.kind == "ivf":
            # ~3% of the lists gave recall@10 >= 0.95 against exact search on clustered data.
            self.index.nprobe = max(8, nlist // 32)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32),
                                    np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> bool:
        """Remove ids; False when this kind cannot (the caller rebuilds)."""
        import faiss

        if not len(ids):
            return True
        if self.kind == "hnsw":
            return False
        self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        return True

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk ids) of the k nearest; ids are -1 past the end."""
        import faiss

        k = max(1, min(k, self.size)) if self.size else 1
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if self.size == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        params: Any = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)  # type: ignore[call-arg]
            else:
                params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
        # One query is too little work to share: OpenMP's thread wake-up and spinning made
        # it 10x slower (40 ms vs 4 ms at 20k flat) on a busy 2-core machine. The setting is
        # per thread, so builds elsewhere keep every core.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = (self.index.search(q, k, params=params) if params
                           else self.index.search(q, k))
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path) -> None:
        import faiss

        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as e:  # FAISS reports I/O failures (disk full, ...) this way
            raise OSError(f"FAISS could not write {path.name}: {str(e).rsplit('Error: ', 1)[-1]}"
                          ) from e

    @classmethod
    def load(cls, path: Path, kind: str) -> Vectors:
        import faiss

        index = faiss.read_index(str(path))
        out = cls(index, kind)
        if kind == "ivf":
            out.set_nprobe(faiss.extract_index_ivf(index).nlist)
        return out
