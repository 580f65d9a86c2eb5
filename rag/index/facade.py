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
"""

from __future__ import annotations

import json
import os
import threading
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
    ModelMismatchError,
)
from rag.index import writer as _writer
from rag.index.derived import State as _State
from rag.index.derived import load_state
from rag.index.folder import (
    Progress,
    modified_ns,
    read_manifest,
)
from rag.index.rebuild import complete_swap, complete_swap_pending
from rag.index.rebuild import rebuild as _rebuild
from rag.index.sentences import SENTENCE_CHARS, SentenceKey, stored_vectors
from rag.index.store import FORMAT, ArticleInfo, Store
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


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Index:
    """An index folder opened for search and updates. Thread-safe for concurrent searches."""

    def __init__(self, path: Path, store: Store, embedder: Embedder, meta: dict[str, str],
                 kind: str, requested: str | None = None) -> None:
        self.path = path
        self.store = store
        self.embedder = embedder
        self.dim = int(meta["dim"])
        self.model = meta["model"]
        self.chunking = ChunkSpec(**json.loads(meta["chunking"]))
        self.kind = kind
        # What the user asked for: "auto" keeps choosing as the index grows (flat, then IVF).
        self.requested = requested or kind
        self.fusion = Fusion()
        self.passage = PassageSpec()
        self._lock = threading.RLock()
        self._state: _State | None = None
        self._query_cache: dict[str, np.ndarray] = {}
        self._store_id = _file_id(path / "store.sqlite")
        self.cache_path = path / CACHE_FILE  # vectors embedded but maybe not yet committed

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls, paths: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str] = "index",
        *, embedder: Embedder | None = None, chunking: ChunkSpec | None = None,
        kind: str = "auto", sync: bool = False, progress: Progress = True,
    ) -> Index:
        """Create or update the index at `path` from files/folders, and return it."""
        idx = cls.open(path, embedder=embedder, chunking=chunking, kind=kind)
        idx.last_report = idx.add(paths, sync=sync, progress=progress)
        return idx

    @classmethod
    def rebuild(
        cls, paths: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str] = "index",
        *, embedder: Embedder | None = None, chunking: ChunkSpec | None = None,
        kind: str = "auto", progress: Progress = True, follow_links: bool = False,
        lock_timeout: float = 10.0, pipeline: Pipeline | None = None,
    ) -> Index:
        """Build the index at `path` afresh from `paths`, keeping the app's uploads, and
        swap it in whole: readers see the old index or the new one at every instant, and
        writers wait for it (it holds the write lock throughout). `pipeline`: as `add`."""
        idx, report = _rebuild(paths, Path(path), embedder=embedder, chunking=chunking,
                               kind=kind, progress=progress, follow_links=follow_links,
                               lock_timeout=lock_timeout, pipeline=pipeline)
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
        chunking: ChunkSpec | None = None, kind: str = "auto",
    ) -> Index:
        """Open the index at `path`, creating an empty one if there is none."""
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
            store.init_meta(first.name, first.dim, asdict(chunking or ChunkSpec()))
            meta = store.meta()
            embedder = first
        if int(meta.get("format", FORMAT)) != FORMAT:
            raise IndexCorruptError(
                f"{p} has index format {meta.get('format')}, this version reads {FORMAT}; "
                "rebuild it with `rag index PATH --index DIR --rebuild`")
        if embedder is None:
            embedder = embedder_for(meta["model"])
        assert embedder is not None
        if embedder.name != meta["model"] or embedder.dim != int(meta["dim"]):
            raise ModelMismatchError(
                f"the index at {p} was built with {meta['model']} (dim {meta['dim']}), not "
                f"{embedder.name} (dim {embedder.dim}); search it with that model, or rebuild: "
                f"`rag index PATH --index {p} --rebuild --model {embedder.name}`")
        if chunking is not None and asdict(chunking) != json.loads(meta["chunking"]):
            raise InputError(
                f"the index at {p} was built with chunking {meta['chunking']}; rebuild it "
                "(`rag index PATH --rebuild`) to change chunk sizes")
        manifest = read_manifest(p)
        if not manifest:
            return cls(p, store, embedder, meta, kind)
        # Manifests written before "requested" existed: keep their kind as it is.
        return cls(p, store, embedder, meta, manifest.get("kind", kind),
                   manifest.get("requested", manifest.get("kind", kind)))

    # -- derived state ---------------------------------------------------------------------
    def _current(self) -> _State:
        """The loaded FAISS/BM25 state, reloaded if another process has written since."""
        mtime = modified_ns(self.path / "manifest.json")
        state = self._state
        if state is not None and not state.behind and (
                state.manifest_mtime == mtime
                or (state.version >= self.store.version and self._same_store())):
            return state
        with self._lock:
            if self._state is None or self._state.behind or self._state.manifest_mtime != mtime:
                if not self._follow_rebuild() and self._state is not None:
                    return self._state  # the folder is being swapped: keep what we have
                self._state = load_state(self)
            return self._state

    def _same_store(self) -> bool:
        return _file_id(self.path / "store.sqlite") == self._store_id

    def _follow_rebuild(self) -> bool:
        """Switch to the store that `rag index --rebuild` swapped in under this folder.
        False while the folder is missing mid-swap. Searches already running keep the old
        connection (it closes when they drop it)."""
        now = _file_id(self.path / "store.sqlite")
        if now is None or now == self._store_id:
            return now is not None
        try:
            new = Index.open(self.path, embedder=self.embedder)
        except ModelMismatchError as e:
            raise ModelMismatchError(f"{e}. It was rebuilt while open here: restart the app "
                                     "or command to search it") from e
        self.store = new.store
        self.chunking, self.kind, self.requested = new.chunking, new.kind, new.requested
        self._store_id, self._state = now, None
        return True

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
        allowed = None
        if filters is not None and filters.active:
            allowed = self.store.filter_ids(filters.published_after, filters.published_before,
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
                            store=self.store, dim=self.dim, k=depth, mode=mode,
                            allowed=allowed, fusion=self.fusion)
            found = passages(chunks, self.store, k, self.passage)
            if len(found) >= k or len(chunks) < depth or depth >= k * MAX_DEPTH_FACTOR:
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
        return stored_vectors(self.store, hits, self.dim, chars)

    def articles(self) -> list[ArticleInfo]:
        """Indexed articles, newest first."""
        return self.store.articles()

    def article(self, article_id: str) -> Article:
        art = self.store.article(article_id)
        if art is None:
            raise InputError(f"no article {article_id!r} in the index; see `rag stats`")
        return art

    def stats(self) -> IndexStats:
        articles, chunks = self.store.counts()
        manifest = read_manifest(self.path) or {}
        if self._state is None and manifest.get("version") == self.store.version:
            # Derived files current: their manifest says all `rag stats` needs, without
            # importing FAISS and bm25s and loading both (~0.2 s of a cold command).
            kind, version = str(manifest["kind"]), int(manifest["version"])
        else:
            state = self._current()
            kind, version = state.vectors.kind, state.version
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return IndexStats(str(self.path), articles, chunks, self.model, self.dim,
                          kind, version, asdict(self.chunking), size)

    def close(self) -> None:
        self.store.close()


__all__ = ["CACHE_FILE", "DEFAULT_MODEL", "Index", "IndexReport", "IndexStats", "Pipeline",
           "Prepared", "chunk_for", "embedding_texts"]
