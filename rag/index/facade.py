"""`Index`: build, update, load and search an index folder.

Layout of the folder:
    store.sqlite        articles, chunks, vectors (the source of truth; SQLite transactions)
    vectors-N.faiss     FAISS index of version N (a cache of the store's vectors)
    bm25-N/             BM25 index of version N
    manifest.json       format, model, dim, chunking, kind, version, counts; swapped atomically
    .write.lock         held by the one process allowed to write

A write is: embed (nothing on disk yet) -> one SQLite transaction -> new derived files
under new names -> atomic manifest swap -> old files deleted. A process killed at any
point leaves a loadable index in the old or the new state; derived files missing or
stale for the store's version are rebuilt from the stored vectors on load.

Which version each read sees (a search and the article lookups for its hits read one;
every read follows another process's writes and rebuilds): `rag.index.reads`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.embed.embedder import DEFAULT_MODEL, Embedder, embedder_for
from rag.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    IndexWriteError,
    InputError,
)
from rag.index import model as _model
from rag.index import writer as _writer
from rag.index.derived import load_state
from rag.index.folder import (
    Progress,
    read_manifest,
)
from rag.index.reads import Reads, State
from rag.index.rebuild import complete_swap, complete_swap_pending
from rag.index.rebuild import rebuild as _rebuild
from rag.index.rows import ArticleInfo
from rag.index.sentences import SENTENCE_CHARS, SentenceKey, recorded, stored_vectors
from rag.index.store import FORMAT, Store
from rag.index.vectors import KINDS
from rag.index.writer import (
    CACHE_FILE,
    IndexReport,
    Pipeline,
    Prepared,
    chunk_for,
    embedding_texts,
)
from rag.ingest.articles import Article
from rag.ingest.chunking import ChunkSpec
from rag.options import MAX_QUERY_CHARS, SEARCH_MODES, Filters, SearchMode
from rag.results import Hit
from rag.retrieve.fusion import Fusion, search
from rag.retrieve.passages import PassageSpec, passages

# Chunks fetched per passage asked for: three covers the neighbours that fold into one
# passage (measured on SciFact and the seed article: 3k chunks almost always give k passages).
FIRST_DEPTH_FACTOR = 3
MAX_DEPTH_FACTOR = 24  # 3k doubled three times: the last try before fewer than k is final


@dataclass(frozen=True)
class IndexStats:
    path: str
    articles: int
    chunks: int
    model: str
    dim: int
    kind: str
    version: int
    chunking: dict[str, int]
    bytes_on_disk: int
    sentences: bool = False  # whether it stores sentence vectors (`rag index --sentences`)


class Index(Reads):
    """An index folder opened for search and updates. Thread-safe for concurrent searches."""

    def __init__(self, path: Path, store: Store, embedder: Embedder | None,
                 meta: dict[str, str], kind: str, requested: str | None = None) -> None:
        self.path = path
        self.store = store  # the live store; reads go through the pinned `State.view`
        self._embedder = embedder  # None: made from the manifest's model on first use
        self._meta = meta
        self.dim = int(meta["dim"])
        self.model = meta["model"]
        self.fingerprint = meta.get("fingerprint")  # of the model's files; None: older index
        self.chunking = ChunkSpec(**json.loads(meta["chunking"]))
        self.sentences = recorded(meta)  # its writes store sentence vectors (rag.index.sentences)
        self.kind = kind
        # What the user asked for: "auto" keeps choosing as the index grows (flat, then IVF).
        self.requested = requested or kind
        self.fusion = Fusion()
        self.passage = PassageSpec()
        self._init_reads()
        self._query_cache: dict[str, np.ndarray] = {}
        self.cache_path = path / CACHE_FILE  # vectors embedded but maybe not yet committed

    @property
    def embedder(self) -> Embedder:
        """The model that embeds queries and articles. Made from the index's own model
        on first use, never before (`rag stats` needs none) and checked against the
        fingerprint the index recorded (`rag.index.model`)."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    made = embedder_for(self.model)
                    _model.check(self.path, self._meta, made)
                    self._embedder = made
        return self._embedder

    @embedder.setter
    def embedder(self, embedder: Embedder) -> None:
        self._embedder = embedder  # same model, other runtime settings (threads, bf16)

    def _load_state(self) -> State:
        return load_state(self)

    def _reopen(self) -> Index:
        return Index.open(self.path, embedder=self._embedder)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls, paths: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str] = "index",
        *, embedder: Embedder | None = None, chunking: ChunkSpec | None = None,
        kind: str = "auto", sync: bool = False, progress: Progress = True,
        sentences: bool | None = None,
    ) -> Index:
        """Create or update the index at `path` from files/folders, and return it.
        `sentences`: as `open`."""
        idx = cls.open(path, embedder=embedder, chunking=chunking, kind=kind,
                       sentences=sentences)
        idx.last_report = idx.add(paths, sync=sync, progress=progress)
        return idx

    @classmethod
    def rebuild(
        cls, paths: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str] = "index",
        *, embedder: Embedder | None = None, chunking: ChunkSpec | None = None,
        kind: str = "auto", progress: Progress = True, follow_links: bool = False,
        lock_timeout: float = 10.0, pipeline: Pipeline | None = None,
        sentences: bool | None = None,
    ) -> Index:
        """Build the index at `path` afresh from `paths`, keeping the app's uploads, and
        swap it in whole: readers see the old index or the new one at every instant, and
        writers wait for it (it holds the write lock throughout). `pipeline`: as `add`.
        `sentences`: whether the new index stores sentence vectors; None: as the old one."""
        def open_index(folder: Path, choice: bool | None) -> Index:
            return cls.open(folder, embedder=embedder, chunking=chunking, kind=kind,
                            sentences=choice)

        idx, report = _rebuild(paths, Path(path), open_index, progress=progress,
                               follow_links=follow_links, lock_timeout=lock_timeout,
                               pipeline=pipeline, sentences=sentences)
        idx.last_report = report
        return idx

    last_report: IndexReport | None = None  # what the last `build`/`rebuild` did

    @classmethod
    def load(cls, path: str | os.PathLike[str] = "index", *,
             embedder: Embedder | None = None) -> Index:
        """Open an existing index; raises `IndexNotFoundError` where there is none."""
        p = Path(path)
        if not (p / "store.sqlite").exists() and not complete_swap_pending(p):
            raise IndexNotFoundError(
                f"no index at {p}; build one with `rag index PATH --index {p}`")
        return cls.open(p, embedder=embedder)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] = "index", *, embedder: Embedder | None = None,
        chunking: ChunkSpec | None = None, kind: str = "auto", sentences: bool | None = None,
    ) -> Index:
        """Open the index at `path`, creating an empty one if there is none. `sentences`:
        whether a new index also stores each sentence's vector (default no: answers do not
        use them, and they cost 83 % more indexing time); an index keeps its choice, and
        asking an existing one for the other is refused with how to rebuild."""
        if kind not in KINDS:
            raise InputError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
        p = Path(path)
        try:
            complete_swap(p)  # a rebuild killed between its two renames (no RENAME_EXCHANGE)
        except OSError:
            pass  # another process is completing it
        exists = (p / "store.sqlite").exists()
        if not exists:
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise IndexWriteError(f"cannot create index folder {p} ({e}); choose a writable "
                                      "folder with --index") from e
        writable = os.access(p, os.W_OK)
        try:
            store = Store(p / "store.sqlite", readonly=exists and not writable)
        except IndexWriteError:
            if not exists:
                raise
            # A full disk: SQLite cannot create its WAL side files. Searching needs no
            # writes, so open read-only; an update will report the full disk itself.
            store = Store(p / "store.sqlite", readonly=True)
        meta = store.meta()
        if not meta.get("model"):
            if not writable:
                raise IndexWriteError(f"{p} is read-only; choose a writable folder with --index")
            first: Embedder = embedder or embedder_for()
            store.init_meta(first.name, first.dim, asdict(chunking or ChunkSpec()),
                            _model.fingerprint(first), bool(sentences))
            meta = store.meta()
            embedder = first
        if int(meta.get("format", FORMAT)) != FORMAT:
            raise IndexCorruptError(
                f"{p} has index format {meta.get('format')}, this version reads {FORMAT}; "
                "rebuild it with `rag index PATH --index DIR --rebuild`")
        if embedder is not None:  # given: checked now; else made and checked on first use
            _model.check(p, meta, embedder)
        if chunking is not None and asdict(chunking) != json.loads(meta["chunking"]):
            raise InputError(
                f"the index at {p} was built with chunking {meta['chunking']}; rebuild it "
                "(`rag index PATH --rebuild`) to change chunk sizes")
        if sentences is not None and sentences != recorded(meta):
            has, flag = ("no ", "--sentences") if sentences else ("", "--no-sentences")
            raise InputError(f"the index at {p} stores {has}sentence vectors; to change that, "
                             f"rebuild it: `rag index PATH --index {p} --rebuild {flag}`")
        manifest = read_manifest(p)
        if not manifest:
            return cls(p, store, embedder, meta, kind)
        # Manifests written before "requested" existed: keep their kind as it is.
        return cls(p, store, embedder, meta, manifest.get("kind", kind),
                   manifest.get("requested", manifest.get("kind", kind)))

    # -- updates ---------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike[str]], *, sync: bool = False,
            progress: Progress = True, lock_timeout: float = 10.0,
            pipeline: Pipeline | None = None, follow_links: bool = False,
            namespace: str = "") -> IndexReport:
        """Index new and changed articles from files/folders; with `sync`, also remove
        articles whose files are known to be gone (never those of a file or folder that
        could not be read). Unchanged articles are not re-embedded, nor is work a killed
        run already embedded (the vector cache). A file that cannot be read is skipped
        with its reason. Links leading out of a folder are followed only with
        `follow_links`. `namespace` prefixes ids (the app's uploads: "upload:"). A
        `pipeline` reads, chunks and embeds elsewhere (`rag.scale`: on Ray); this process
        still decides and writes everything, so the same guarantees hold."""
        return _writer.add(self, paths, sync=sync, progress=progress,
                           lock_timeout=lock_timeout, pipeline=pipeline,
                           follow_links=follow_links, namespace=namespace)

    def remove(self, article_ids: Sequence[str], *, lock_timeout: float = 10.0) -> int:
        """Remove articles by id; returns how many were indexed."""
        return _writer.remove(self, article_ids, lock_timeout)

    # -- reading ---------------------------------------------------------------------------
    def search(
        self, query: str, k: int = 5, *, filters: Filters | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Hit]:
        """The `k` passages that best match `query`, best first, among the articles that
        pass `filters`."""
        if mode not in SEARCH_MODES:
            raise InputError(
                f"unknown search mode {mode!r}; choose one of {', '.join(SEARCH_MODES)}")
        query = (query or "").strip()
        if not query:
            raise InputError("the question is empty; type a question")
        if k < 1:
            raise InputError("k must be at least 1")
        state = self._current()
        view = state.view
        assert view is not None
        allowed = None
        if filters is not None and filters.active:
            allowed = view.filter_ids(filters.published_after, filters.published_before,
                                      filters.sources)
            if not len(allowed):
                return []
        query = query[:MAX_QUERY_CHARS]
        qvec = self.embed_query(query)
        # Extra chunks: neighbours of one passage fold into it, and k distinct passages
        # remain. Rarely even 3k chunks fold into fewer than k: then look deeper, doubling,
        # up to MAX_DEPTH_FACTOR * k chunks (past that the filters leave too few articles).
        depth = k * FIRST_DEPTH_FACTOR
        while True:
            chunks = search(query, qvec, vectors=state.vectors, lexical=state.lexical,
                            store=view, dim=self.dim, k=depth, mode=mode,
                            allowed=allowed, fusion=self.fusion)
            kept = chunks
            if view.version != state.version and chunks:  # a snapshot ahead of the files
                dead = view.dead_chunks([h.chunk_id for h in chunks])
                kept = [h for h in chunks if h.chunk_id not in dead]
            found = passages(kept, view, k, self.passage)
            if len(found) >= k or len(chunks) < depth or depth >= k * MAX_DEPTH_FACTOR:
                self._remember(view, found)
                return found
            depth *= 2

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector, remembered: an answer embeds its question more than once."""
        vec = self._query_cache.get(text)
        if vec is None:
            vec = self.embedder.embed([text])[0]
            with self._lock:
                if len(self._query_cache) >= 256:
                    self._query_cache.pop(next(iter(self._query_cache)))
                self._query_cache[text] = vec
        return vec

    def sentence_vectors(self, hits: Sequence[Hit], chars: int = SENTENCE_CHARS
                         ) -> dict[SentenceKey, np.ndarray]:
        """Stored vectors of the sentences in `hits` by (article id, start, end), each of
        the sentence's first `chars` characters; absent ones are not stored (embed them)."""
        # The live store: sentence rows hang off chunk ids that are never reused, are only
        # added (a backfill needs no new version) and go with their chunks' purge.
        return stored_vectors(self.store, hits, self.dim, chars)

    def articles(self) -> list[ArticleInfo]:
        """Indexed articles, newest first."""
        return self._view().articles()

    def article(self, article_id: str) -> Article:
        """The article as this thread's last search saw it, if it was among the hits
        (`rag.index.facade`), else as the index holds it now."""
        art = self._bound(article_id).article(article_id)
        if art is None:
            raise InputError(f"no article {article_id!r} in the index; see `rag stats`")
        return art

    def stats(self) -> IndexStats:
        view = self._view()
        articles, chunks = view.counts()
        manifest = read_manifest(self.path) or {}
        if self._state is None and manifest.get("version") == view.version:
            # Derived files current: their manifest says all `rag stats` needs, without
            # importing FAISS and bm25s and loading both (~0.2 s of a cold command).
            kind, version = str(manifest["kind"]), int(manifest["version"])
        else:
            state = self._current()
            kind, version = state.vectors.kind, state.version
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return IndexStats(str(self.path), articles, chunks, self.model, self.dim,
                          kind, version, asdict(self.chunking), size, self.sentences)


__all__ = ["CACHE_FILE", "DEFAULT_MODEL", "Index", "IndexReport", "IndexStats", "Pipeline",
           "Prepared", "chunk_for", "embedding_texts"]
