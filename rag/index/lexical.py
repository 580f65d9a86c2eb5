"""BM25 over chunk text (title included), kept as immutable segments so that an update
costs the size of the change, not of the index.

Each segment holds raw term frequencies in term-major (CSC) form; idf and length
normalisation are computed at query time from the live rows, so adding or removing a few
chunks writes one small segment plus the per-row arrays, and scores stay exactly those of
an index built from scratch (Lucene's BM25, as bm25s computes it). Segments are merged,
and removed rows dropped, when there are too many of them (see `_needs_merge`).

On disk (a folder per index version): `rows.npz` (chunk ids, lengths, live mask),
`segments.json`, and per segment `<name>.terms` / `.indptr.npy` / `.rows.npy` /
`.tf.npy`. Segment files never change once written, so a new version hard-links them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Single characters count: "2 intercepted" must match the digit.
_TOKEN_PATTERN = r"(?u)\b\w+\b"
K1, B = 1.2, 0.75
MAX_SEGMENTS = 8  # more, and the small ones are merged (query cost grows per segment)
MAX_DEAD = 0.25  # share of removed rows above which everything is merged and compacted
_BUILD_BATCH = 20_000  # chunks tokenized at a time when building: bounds Python memory


@lru_cache(maxsize=1)
def stemmer() -> Any:
    """The English Snowball stemmer BM25 uses (PyStemmer); answers stem with the same one."""
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lowercased, stop-worded, Porter2-stemmed tokens: the same for chunks and queries."""
    import bm25s

    out = bm25s.tokenize(
        list(texts), token_pattern=_TOKEN_PATTERN, stopwords="en", stemmer=stemmer(),
        return_ids=False, show_progress=False,
    )
    return [list(t) for t in out]


class Segment:
    """Term frequencies of rows first_row..first_row+n_rows-1: postings of term `terms[t]`
    are `rows[indptr[t]:indptr[t+1]]` (global row numbers, ascending) with counts `tf`.
    Never changed once built; `source` is the folder its files were last written to."""

    def __init__(self, first_row: int, n_rows: int, name: str, terms: Sequence[str],
                 indptr: np.ndarray, rows: np.ndarray, tf: np.ndarray,
                 source: Path | None = None) -> None:
        self.first_row, self.n_rows, self.name = first_row, n_rows, name
        self.terms = tuple(terms)
        self.indptr, self.rows, self.tf = indptr, rows, tf
        self.source = source
        self._column: dict[str, int] | None = None

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        if self._column is None:  # built on first use: a large vocabulary takes a while
            self._column = {t: i for i, t in enumerate(self.terms)}
        t = self._column.get(term)
        if t is None:
            return None
        a, b = int(self.indptr[t]), int(self.indptr[t + 1])
        return np.asarray(self.rows[a:b]), np.asarray(self.tf[a:b])

    def save(self, folder: Path) -> None:
        if self.source is not None and (self.source / f"{self.name}.terms").exists():
            for suffix in _SUFFIXES:
                _link_or_copy(self.source / f"{self.name}{suffix}", folder / f"{self.name}{suffix}")
            return
        (folder / f"{self.name}.terms").write_text("\n".join(self.terms), encoding="utf-8")
        np.save(folder / f"{self.name}.indptr.npy", self.indptr)
        np.save(folder / f"{self.name}.rows.npy", self.rows)
        np.save(folder / f"{self.name}.tf.npy", self.tf)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "first_row": self.first_row, "n_rows": self.n_rows}

    @classmethod
    def load(cls, folder: Path, d: dict[str, Any]) -> Segment:
        name = d["name"]
        text = (folder / f"{name}.terms").read_text(encoding="utf-8")
        return cls(
            d["first_row"], d["n_rows"], name, text.split("\n") if text else (),
            np.load(folder / f"{name}.indptr.npy"),
            np.load(folder / f"{name}.rows.npy", mmap_mode="r"),
            np.load(folder / f"{name}.tf.npy", mmap_mode="r"),
            folder,
        )


_SUFFIXES = (".terms", ".indptr.npy", ".rows.npy", ".tf.npy")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # no hard links here (another file system): copy
        shutil.copyfile(src, dst)


def _segment(ids: np.ndarray, docs: Sequence[Sequence[str]], first_row: int) -> tuple[Segment, np.ndarray]:
    """A segment for `docs` (chunk `ids`) at rows first_row.., and the docs' token counts."""
    vocab: dict[str, int] = {}
    cols = [vocab.setdefault(t, len(vocab)) for doc in docs for t in doc]
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    end = first_row + len(docs)
    rows = np.repeat(np.arange(first_row, end, dtype=np.int64), lengths)
    pairs, tf = np.unique(np.asarray(cols, dtype=np.int64) * end + rows, return_counts=True)
    col, row = np.divmod(pairs, end)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(col, minlength=len(vocab)), out=indptr[1:])
    seg = Segment(first_row, len(docs), _segment_name(ids), tuple(vocab), indptr,
                  row.astype(np.int32), np.minimum(tf, 65535).astype(np.uint16))
    return seg, lengths.astype(np.int32)


def _merge(ids: np.ndarray, segments: Sequence[Segment], keep: np.ndarray | None) -> Segment:
    """One segment holding the postings of adjacent `segments` (`ids`: every row's chunk
    id); with `keep` (a mask over all rows), only kept rows, renumbered from 0."""
    vocab: dict[str, int] = {}
    cols, rows, tfs = [], [], []
    for seg in segments:
        cmap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in seg.terms),
                           dtype=np.int64, count=len(seg.terms))
        cols.append(np.repeat(cmap, np.diff(seg.indptr)))
        rows.append(np.asarray(seg.rows, dtype=np.int64))
        tfs.append(np.asarray(seg.tf))
    col, row, tf = np.concatenate(cols), np.concatenate(rows), np.concatenate(tfs)
    first = segments[0].first_row
    n_rows = sum(s.n_rows for s in segments)
    span = ids[first:first + n_rows]
    if keep is not None:
        live = keep[row]
        col, row, tf = col[live], row[live], tf[live]
        row = (np.cumsum(keep) - 1)[row]
        first, n_rows, span = 0, int(keep.sum()), ids[keep]
    order = np.lexsort((row, col))
    col, row, tf = col[order], row[order], tf[order]
    counts = np.bincount(col, minlength=len(vocab))
    used = counts > 0  # terms whose every row was removed go
    terms = [t for t, u in zip(vocab, used) if u]
    indptr = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(counts[used], out=indptr[1:])
    return Segment(first, n_rows, _segment_name(span), terms, indptr, row.astype(np.int32),
                   tf.astype(np.uint16))


def _segment_name(ids: np.ndarray) -> str:
    # The first chunk id and the row count: segments cover disjoint id ranges, so names in
    # one version never collide.
    return f"c{int(ids[0])}-{len(ids)}" if len(ids) else "empty"


class Lexical:
    """A BM25 index whose rows map to chunk ids (`ids`, ascending; removed rows score 0)."""

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, alive: np.ndarray,
                 segments: Sequence[Segment], k1: float = K1, b: float = B) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.alive = np.asarray(alive, dtype=bool)
        self.segments = tuple(segments)
        self.k1, self.b = k1, b
        self.n_live = int(self.alive.sum())
        self.dead = len(self.ids) - self.n_live
        self._norm = self.length_norms(self.live_length() / self.n_live if self.n_live else 1.0)

    @property
    def live_ids(self) -> np.ndarray:
        """Chunk ids of the rows not removed."""
        return self.ids[self.alive] if self.dead else self.ids

    def live_length(self) -> int:
        """Tokens in all the rows not removed."""
        return int(self.lengths[self.alive].sum()) if self.dead else int(self.lengths.sum())

    def length_norms(self, avgdl: float) -> np.ndarray:
        """Each row's length normalisation, the denominator's constant part for every term,
        in a corpus whose rows average `avgdl` tokens (this index's own, or all shards')."""
        norms: np.ndarray = (self.k1 * (1 - self.b + self.b * self.lengths / max(avgdl, 1e-9))
                             ).astype(np.float32)
        return norms

    def live_postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and term frequencies of `term` in the rows not removed."""
        got = [p for s in self.segments if (p := s.postings(term)) is not None]
        if not got:
            return np.zeros(0, np.int64), np.zeros(0, np.uint16)
        rows = np.concatenate([r for r, _ in got]) if len(got) > 1 else got[0][0]
        tf = np.concatenate([t for _, t in got]) if len(got) > 1 else got[0][1]
        if self.dead:
            live = self.alive[rows]
            rows, tf = rows[live], tf[live]
        return rows, tf

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def build(cls, batches: Iterable[tuple[np.ndarray, Sequence[str]]],
              k1: float = K1, b: float = B) -> Lexical:
        """BM25 over (chunk ids, texts) batches given in ascending id order."""
        ids: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        segments: list[Segment] = []
        n = 0
        for bids, texts in batches:
            for i in range(0, len(texts), _BUILD_BATCH):
                part_ids = np.asarray(bids[i:i + _BUILD_BATCH], dtype=np.int64)
                seg, lens = _segment(part_ids, tokenize(texts[i:i + _BUILD_BATCH]), n)
                ids.append(part_ids)
                lengths.append(lens)
                segments.append(seg)
                n += len(part_ids)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        if len(segments) > 1:
            segments = [_merge(all_ids, segments, None)]
        return cls(all_ids, np.concatenate(lengths) if lengths else np.zeros(0, np.int32),
                   np.ones(n, dtype=bool), segments, k1, b)

    def updated(self, new_ids: np.ndarray, new_texts: Sequence[str],
                gone_ids: np.ndarray) -> Lexical:
        """A new index with `new_ids` added and `gone_ids` removed; `self` is unchanged
        (searches may be using it). New ids must be above every id held."""
        new_ids = np.asarray(new_ids, dtype=np.int64)
        if len(new_ids) and len(self.ids) and new_ids.min() <= self.ids[-1]:
            raise ValueError("new chunk ids must be above the indexed ones")
        alive = self.alive.copy()
        gone = np.asarray(gone_ids, dtype=np.int64)
        if len(gone) and len(self.ids):
            pos = np.minimum(np.searchsorted(self.ids, gone), len(self.ids) - 1)
            alive[pos[self.ids[pos] == gone]] = False
        segments = list(self.segments)
        ids, lengths = self.ids, self.lengths
        if len(new_ids):
            order = np.argsort(new_ids, kind="stable")
            new_ids = new_ids[order]
            seg, lens = _segment(new_ids, tokenize([new_texts[i] for i in order]), len(ids))
            segments.append(seg)
            ids = np.concatenate([ids, new_ids])
            lengths = np.concatenate([lengths, lens])
            alive = np.concatenate([alive, np.ones(len(new_ids), dtype=bool)])
        return Lexical(ids, lengths, alive, segments, self.k1, self.b)._compacted()

    def _compacted(self) -> Lexical:
        """Merge segments when there are too many, and drop removed rows when they are
        too large a share (merges are amortised: each is paid for by the updates before)."""
        if self.dead and (self.dead > MAX_DEAD * len(self.ids) or not self.n_live):
            seg = _merge(self.ids, self.segments, self.alive)
            return Lexical(self.ids[self.alive], self.lengths[self.alive],
                           np.ones(self.n_live, dtype=bool), [seg], self.k1, self.b)
        if len(self.segments) > MAX_SEGMENTS:
            # Merge the small segments and leave the big first one alone (tiered, as Lucene
            # does), unless the rest has grown to its size.
            base, rest = self.segments[0], self.segments[1:]
            if base.n_rows <= sum(s.n_rows for s in rest):
                return Lexical(self.ids, self.lengths, self.alive,
                               [_merge(self.ids, self.segments, None)], self.k1, self.b)
            return Lexical(self.ids, self.lengths, self.alive,
                           [base, _merge(self.ids, rest, None)], self.k1, self.b)
        return self

    # -- disk ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write into `folder` (new, or left by an interrupted write); unchanged segments
        are hard-linked from where they were, not rewritten."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "rows.npz", ids=self.ids, lengths=self.lengths, alive=self.alive)
        for seg in self.segments:
            seg.save(folder)
        (folder / "segments.json").write_text(json.dumps({
            "k1": self.k1, "b": self.b, "n": len(self.ids),
            "segments": [s.describe() for s in self.segments]}))

    def moved_to(self, folder: Path) -> None:
        """Record that the files written by `save` now live in `folder` (after a rename)."""
        for seg in self.segments:
            seg.source = folder

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        meta = json.loads((folder / "segments.json").read_text())
        with np.load(folder / "rows.npz") as rows:
            ids, lengths, alive = rows["ids"], rows["lengths"], rows["alive"]
        if len(ids) != meta["n"]:
            raise ValueError(f"{folder} is incomplete")
        segments = [Segment.load(folder, d) for d in meta["segments"]]
        return cls(ids, lengths, alive, segments, meta["k1"], meta["b"])

    # -- scoring -------------------------------------------------------------------------------
    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for `query` (zeros where no term matched)."""
        return bm25(query, [self], [self._norm], self.n_live)


def bm25(query: str, parts: Sequence[Lexical], norms: Sequence[np.ndarray],
         n_live: int) -> np.ndarray:
    """BM25 score for `query` of every row of `parts` laid end to end (zeros where no term
    matched), with each part's length normalisation `norms`, `n_live` live rows in all and
    a term's document frequency summed over the parts: one index is one part, with its
    own statistics; shards (`rag.index.shards`) score exactly as one index would."""
    offsets = np.cumsum([0] + [len(p.ids) for p in parts])
    out = np.zeros(int(offsets[-1]), dtype=np.float32)
    if not n_live:
        return out
    tokens = tokenize([query])[0]
    for term in dict.fromkeys(tokens):
        postings = [p.live_postings(term) for p in parts]
        df = sum(len(rows) for rows, _ in postings)
        if not df:
            continue
        # A repeated query term counts again, as in bm25s.
        idf = np.float32(np.log1p((n_live - df + 0.5) / (df + 0.5)) * tokens.count(term))
        for offset, norm, (rows, tf) in zip(offsets, norms, postings):
            if len(rows):
                tf = tf.astype(np.float32)
                out[offset + rows] += idf * tf / (tf + norm[rows])
    return out
