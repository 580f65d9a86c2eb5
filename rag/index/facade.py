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
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.embed.embedder import DEFAULT_MODEL, Embedder, SentenceTransformerEmbedder
from rag.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    IndexWriteError,
    InputError,
    ModelMismatchError,
)
from rag.faults import checkpoint
from rag.index.folder import (
    Progress,
    ProgressBar,
    WriteLock,
    count_items,
    fsync_file,
    is_under,
    modified_ns,
    read_manifest,
    write_json_atomic,
)
from rag.index.lexical import Lexical
from rag.index.store import FORMAT, ArticleInfo, Store
from rag.index.vectors import KINDS, Vectors, choose_kind
from rag.ingest.articles import Article, Skipped, iter_articles
from rag.ingest.chunking import Chunk, ChunkSpec, chunk_article
from rag.options import SEARCH_MODES, Filters, SearchMode
from rag.results import Hit
from rag.retrieve.fusion import Fusion, search
from rag.retrieve.passages import PassageSpec, passages

_EMBED_BATCH = 128


@dataclass(frozen=True)
class IndexReport:
    """What one `add` did."""

    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: tuple[Skipped, ...]
    chunks_added: int
    articles: int
    chunks: int
    seconds: float

    @property
    def status(self) -> str:
        """"ok", or "partial" when some inputs were skipped."""
        return "partial" if self.skipped else "ok"


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


@dataclass
class _State:
    version: int
    vectors: Vectors
    lexical: Lexical
    manifest_mtime: int
    behind: bool = False  # an older version, served while a writer finishes the newer one


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

    last_report: IndexReport | None = None  # what the last `build` did

    @classmethod
    def load(cls, path: str | os.PathLike[str] = "index", *,
             embedder: Embedder | None = None) -> Index:
        """Open an existing index; raises `IndexNotFoundError` where there is none."""
        p = Path(path)
        if not (p / "store.sqlite").exists():
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
            first: Embedder = embedder or SentenceTransformerEmbedder()
            store.init_meta(first.name, first.dim, asdict(chunking or ChunkSpec()))
            meta = store.meta()
            embedder = first
        if int(meta.get("format", FORMAT)) != FORMAT:
            raise IndexCorruptError(
                f"{p} has index format {meta.get('format')}, this version reads {FORMAT}; "
                "rebuild it with `rag index PATH --index DIR --rebuild`")
        if embedder is None:
            embedder = SentenceTransformerEmbedder(meta["model"])
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
                self._state = self._load_state()
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

    def _persisted(self, version: int) -> _State | None:
        """The derived files on disk, if they are those of `version` and readable."""
        manifest = read_manifest(self.path)
        mtime = modified_ns(self.path / "manifest.json")
        if not manifest or manifest.get("version") != version:
            return None
        try:
            vec = Vectors.load(self.path / manifest["vectors"], manifest["kind"])
            lex = Lexical.load(self.path / manifest["bm25"])
        except Exception:  # unreadable cache: the caller rebuilds it
            return None
        return _State(version, vec, lex, mtime)

    def _load_state(self) -> _State:
        version = self.store.version
        loaded = self._persisted(version)
        if loaded is not None:
            return loaded
        # Derived files are missing or behind the store. While a writer holds the lock it
        # is between its commit and its manifest swap: serve the version before, as
        # searches already running do (rebuilding 1M vectors here would take minutes).
        if self._writer_active():
            mtime = modified_ns(self.path / "manifest.json")
            if self._state is not None and self._state.manifest_mtime == mtime:
                return self._state
            manifest = read_manifest(self.path) or {}
            previous = self._persisted(int(manifest.get("version", -1)))
            if previous is not None:
                previous.behind = True
                return previous
        # Else a write was interrupted after its commit: rebuild the derived files from the
        # stored vectors, and persist them if we may write.
        state = self._rebuild_state(version)
        try:
            with WriteLock(self.path, timeout=0):
                if self._same_store():  # never derived files of an old store into a new folder
                    self._persist(state)
        except (IndexLockedError, IndexWriteError, OSError):
            pass
        state.manifest_mtime = modified_ns(self.path / "manifest.json")
        return state

    def _writer_active(self) -> bool:
        try:
            with WriteLock(self.path, timeout=0):
                return False
        except IndexLockedError:
            return True
        except (IndexWriteError, OSError):  # a read-only folder: nobody writes there
            return False

    def _rebuild_state(self, version: int, store: Store | None = None) -> _State:
        store = store or self.store
        _, n = store.counts()
        kind = "auto" if self.requested == "auto" else self.kind
        vec = Vectors.build(self.dim, kind, store.iter_live_vectors(), n)
        return _State(version, vec, Lexical.build(store.iter_live_texts()), 0)

    def _persist(self, state: _State, store: Store | None = None) -> None:
        """Write derived files for `state` under new names, then swap the manifest."""
        vname, bname = f"vectors-{state.version}.faiss", f"bm25-{state.version}"
        tmp_v, tmp_b = self.path / f".{vname}.tmp", self.path / f".{bname}.tmp"
        try:
            state.vectors.save(tmp_v)
            fsync_file(tmp_v)
            checkpoint("faiss_write")
            if tmp_b.exists():
                shutil.rmtree(tmp_b)
            state.lexical.save(tmp_b)
            checkpoint("bm25_write")
            os.replace(tmp_v, self.path / vname)
            if (self.path / bname).exists():
                shutil.rmtree(self.path / bname)
            os.replace(tmp_b, self.path / bname)
            state.lexical.moved_to(self.path / bname)
            articles, chunks = (store or self.store).counts()
            write_json_atomic(self.path / "manifest.json", {
                "format": FORMAT, "model": self.model, "dim": self.dim,
                "chunking": asdict(self.chunking), "kind": state.vectors.kind,
                "requested": self.requested,
                "version": state.version, "vectors": vname, "bm25": bname,
                "articles": articles, "chunks": chunks,
            })
        except OSError as e:
            raise IndexWriteError(
                f"could not write the index files in {self.path} ({e}); free disk space or fix "
                "permissions and run the same command again (the previous index is intact)"
            ) from e
        self.kind = state.vectors.kind
        for old in self.path.iterdir():
            # Also temporaries an interrupted write left behind (we hold the write lock).
            if old.name.startswith(("vectors-", "bm25-", ".vectors-", ".bm25-")) and \
                    old.name not in (vname, bname):
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)

    # -- updates ---------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike[str]], *, sync: bool = False,
            progress: Progress = True, lock_timeout: float = 10.0) -> IndexReport:
        """Index new and changed articles from files/folders; with `sync`, also remove
        articles whose files are gone. Unchanged articles are not re-embedded."""
        t0 = time.perf_counter()
        roots = [Path(p) for p in paths]
        for r in roots:
            if not r.exists():
                raise InputError(f"{r} does not exist; give a file or folder of articles")
        with WriteLock(self.path, timeout=lock_timeout):
            writer = Store(self.path / "store.sqlite")
            try:
                return self._add_locked(writer, roots, sync, progress, t0)
            finally:
                writer.close()

    def _add_locked(self, writer: Store, roots: list[Path], sync: bool, progress: Progress,
                    t0: float) -> IndexReport:
        hashes = writer.article_hashes()
        by_hash = {h: i for i, h in hashes.items()}
        paths_of = writer.article_paths()
        seen: set[str] = set()
        skipped: list[Skipped] = []
        removals: list[str] = []
        counts = {"added": 0, "updated": 0, "unchanged": 0, "chunks": 0}
        pending: list[tuple[Article, list[Chunk]]] = []

        def flush(bar: ProgressBar) -> Iterator[tuple[Article, Sequence[Chunk], np.ndarray]]:
            texts = [f"{a.title}\n{c.text}" for a, cs in pending for c in cs]
            vecs = self.embedder.embed(texts) if texts else np.zeros((0, self.dim), np.float32)
            checkpoint("embedding")
            n = 0
            for a, cs in pending:
                bar.step(a.path or a.id)  # an article counts as done once it is embedded
                yield a, cs, vecs[n:n + len(cs)]
                n += len(cs)
                counts["chunks"] += len(cs)
            pending.clear()

        def upserts() -> Iterator[tuple[Article, Sequence[Chunk], np.ndarray]]:
            """Articles to write, embedded a batch at a time as the store consumes them."""
            bar = ProgressBar(progress, count_items(roots))
            for item in iter_articles(roots):
                if isinstance(item, Skipped):
                    skipped.append(item)
                    bar.step(item.path)
                    continue
                art = item
                if art.id in seen:
                    skipped.append(Skipped(art.path or art.id,
                                           f"duplicate id {art.id!r} in this run"))
                    bar.step(art.path or art.id)
                    continue
                seen.add(art.id)
                if hashes.get(art.id) == art.content_hash:
                    counts["unchanged"] += 1
                    bar.step(art.path or art.id)
                    continue
                twin = by_hash.get(art.content_hash)
                if twin is not None and twin != art.id:
                    twin_path = paths_of.get(twin)
                    if twin_path is None or Path(twin_path).exists() or twin in seen:
                        skipped.append(Skipped(art.path or art.id, f"duplicate of {twin}"))
                        bar.step(art.path or art.id)
                        continue
                    removals.append(twin)  # the file was renamed: re-key, don't duplicate
                by_hash[art.content_hash] = art.id
                counts["updated" if art.id in hashes else "added"] += 1
                chunks = chunk_article(art.id, art.text, self.chunking, self._fits(art.title))
                pending.append((art, chunks))
                if sum(len(cs) for _, cs in pending) >= _EMBED_BATCH:
                    yield from flush(bar)
            yield from flush(bar)
            bar.close()

        def all_removals() -> Iterator[str]:
            """Re-keyed renames, and with `sync` articles whose files are gone (evaluated
            after every file was read)."""
            if sync:
                bad_paths = {s.path.split(":")[0] for s in skipped}
                for aid, apath in paths_of.items():
                    if aid in seen or aid in removals or not apath:
                        continue
                    if any(is_under(apath, r) for r in roots) and apath not in bad_paths:
                        removals.append(aid)
            yield from removals

        before = writer.version
        version, new_ids, gone_ids = writer.apply(upserts(), all_removals())
        if version != before:
            self._after_write(writer, version, np.array(new_ids, np.int64),
                              np.array(gone_ids, np.int64))
        elif (read_manifest(self.path) or {}).get("version") != writer.version:
            # An earlier run committed to the store but never wrote the derived files (killed,
            # disk full): finish its job now instead of rebuilding them on every load.
            with self._lock:
                state = self._rebuild_state(writer.version, writer)
                self._persist(state, writer)
                state.manifest_mtime = modified_ns(self.path / "manifest.json")
                self._state = state
        articles, chunks_total = writer.counts()
        return IndexReport(
            added=counts["added"], updated=counts["updated"],
            removed=len([r for r in removals if r not in seen]), unchanged=counts["unchanged"],
            skipped=tuple(skipped), chunks_added=counts["chunks"],
            articles=articles, chunks=chunks_total, seconds=time.perf_counter() - t0,
        )

    def remove(self, article_ids: Sequence[str], *, lock_timeout: float = 10.0) -> int:
        """Remove articles by id; returns how many were indexed."""
        with WriteLock(self.path, timeout=lock_timeout):
            writer = Store(self.path / "store.sqlite")
            try:
                live = writer.article_hashes()
                ids = [a for a in article_ids if a in live]
                if ids:
                    version, new_ids, gone_ids = writer.apply([], ids)
                    self._after_write(writer, version, np.array(new_ids, np.int64),
                                      np.array(gone_ids, np.int64))
                return len(ids)
            finally:
                writer.close()

    def _after_write(self, writer: Store, version: int, new_ids: np.ndarray,
                     gone_ids: np.ndarray) -> None:
        """Bring FAISS/BM25 up to `version` (incrementally where possible) and persist.
        New rows are read through `writer`: the shared reader connection may be inside
        another thread's read, on the snapshot before the commit."""
        import faiss

        with self._lock:
            old = self._state
            if old is None or old.version != version - 1:
                # Not loaded here (`rag index FILE` never searches): start from the previous
                # version's files rather than rebuilding (and retraining IVF) from scratch.
                old = self._persisted(version - 1)
            state: _State | None = None
            if old is not None:
                if old is self._state:  # searches may be using it: change a copy
                    vec = Vectors(faiss.clone_index(old.vectors.index), old.vectors.kind)
                    if old.vectors.kind == "ivf":
                        vec.index.nprobe = old.vectors.index.nprobe
                else:
                    vec = old.vectors
                if vec.remove(gone_ids):
                    vec.add(new_ids, writer.vectors(list(new_ids), self.dim))
                    if self.requested == "auto" and vec.kind == "flat" and \
                            choose_kind("auto", vec.size) == "ivf":
                        # Grown past exact search's range: train IVF now, once.
                        vec = Vectors.build(self.dim, "auto", writer.iter_live_vectors(),
                                            vec.size)
                    lex = old.lexical.updated(new_ids, writer.texts(list(new_ids)), gone_ids)
                    state = _State(version, vec, lex, 0)
            if state is None:
                state = self._rebuild_state(version, writer)
            self._persist(state, writer)
            state.manifest_mtime = modified_ns(self.path / "manifest.json")
            self._state = state

    def _fits(self, title: str) -> Callable[[str], bool] | None:
        count = getattr(self.embedder, "count_tokens", None)
        limit = getattr(self.embedder, "max_tokens", None)
        if count is None or limit is None:
            return None
        return lambda text: bool(count(f"{title}\n{text}") <= limit)

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
        qvec = self.embed_query(query[:4000])
        # Extra chunks: neighbours of one passage fold into it, and k distinct passages
        # remain. Rarely even 3k chunks fold into fewer than k: then look deeper.
        depth = k * 3
        while True:
            chunks = search(query[:4000], qvec, vectors=state.vectors, lexical=state.lexical,
                            store=self.store, dim=self.dim, k=depth, mode=mode,
                            allowed=allowed, fusion=self.fusion)
            found = passages(chunks, self.store, k, self.passage)
            if len(found) >= k or len(chunks) < depth or depth >= k * 24:
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
        state = self._current()
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return IndexStats(str(self.path), articles, chunks, self.model, self.dim,
                          state.vectors.kind, state.version, asdict(self.chunking), size)

    def close(self) -> None:
        self.store.close()


__all__ = ["DEFAULT_MODEL", "Index", "IndexReport", "IndexStats"]
