"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused into one list of `Hit`s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .hits import Hit
from .lexical import Lexical
from .store import Store
from .vectors import Vectors

MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are combined (reciprocal-rank fusion, weighted).

    `depth` candidates are taken from each side before fusing.
    """

    k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    depth: int = 100


def rrf(rankings: Sequence[Sequence[int]], weights: Sequence[float], k: int = 60) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)).

    >>> sorted(rrf([[1, 2], [2, 3]], [1.0, 1.0], k=0).items())
    [(1, 1.0), (2, 1.5), (3, 0.5)]
    """
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return fused


def search(
    query: str,
    qvec: np.ndarray,
    *,
    vectors: Vectors,
    lexical: Lexical,
    store: Store,
    dim: int,
    k: int = 5,
    mode: str = "hybrid",
    allowed: np.ndarray | None = None,
    fusion: Fusion = Fusion(),
) -> list[Hit]:
    """The top `k` chunks for `query` (`qvec` is its normalised embedding)."""
    depth = max(fusion.depth, k)
    rankings: list[list[int]] = []
    weights: list[float] = []
    lex_scores = np.zeros(0, dtype=np.float32)
    if mode in ("hybrid", "dense"):
        _, ids = vectors.search(qvec, depth, allowed)
        rankings.append([int(i) for i in ids])
        weights.append(fusion.dense_weight)
    if mode in ("hybrid", "lexical"):
        lex_scores = lexical.scores(query)
        if allowed is not None and len(lex_scores):
            mask = np.isin(lexical.ids, allowed)
            lex_scores = np.where(mask, lex_scores, 0.0)
        if len(lex_scores):
            top = np.argsort(-lex_scores, kind="stable")[:depth]
            top = top[lex_scores[top] > 0]
            rankings.append([int(lexical.ids[i]) for i in top])
            weights.append(fusion.lexical_weight)
    fused = rrf(rankings, weights, fusion.k)
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
    chosen = [cid for cid, _ in best[: k * 2]]  # spare ids in case a reader is a version behind
    rows = store.chunks(chosen)
    chosen = [c for c in chosen if c in rows][:k]
    if not chosen:
        return []
    cos = store.vectors(chosen, dim) @ qvec.astype(np.float32)
    lex_of = _lookup(lexical, lex_scores, chosen)
    hits = []
    for rank, (cid, dense, lex) in enumerate(zip(chosen, cos, lex_of), start=1):
        r = rows[cid]
        hits.append(Hit(
            rank=rank, score=float(fused[cid]), article_id=r.article_id, title=r.title,
            published=r.published, source=r.source, url=r.url, path=r.path, chunk_id=cid,
            text=r.text, start=r.start, end=r.end, dense=float(dense), lexical=float(lex),
        ))
    return hits


def _lookup(lexical: Lexical, scores: np.ndarray, ids: Sequence[int]) -> list[float]:
    if not len(scores):
        return [0.0] * len(ids)
    pos = np.searchsorted(lexical.ids, ids)
    out = []
    for p, cid in zip(pos, ids):
        ok = p < len(lexical.ids) and lexical.ids[p] == cid
        out.append(float(scores[p]) if ok else 0.0)
    return out
