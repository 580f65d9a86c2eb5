"""Which version of the store and derived files each read of an `Index` sees, and the
state an `Index` shares with the modules below it that write and derive it (`Reads`).

Every read (search, articles, article, stats) first checks the version, as a search does,
and follows a rebuild swapped in by another process. A search and the article lookups for
its hits read one version: the store pinned with the derived state it searched
(`State.view`, one SQLite read transaction), and `article()` of an id among the
calling thread's last hits reads that search's snapshot while the index keeps it (the
current view and the one before: at most two snapshots are held, whatever the threads;
after a rebuild only the new store's).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import IndexWriteError, ModelMismatchError
from rag.index.folder import modified_ns
from rag.index.lexical import Lexical
from rag.index.shards import ShardedLexical, ShardedVectors
from rag.index.store import Store
from rag.index.vectors import Vectors

if TYPE_CHECKING:
    from rag.embed.embedder import Embedder
    from rag.ingest.chunking import ChunkSpec
    from rag.results import Hit


@dataclass
class State:
    """The derived search state (FAISS + BM25) of one store version (`rag.index.derived`)."""

    version: int
    vectors: Vectors | ShardedVectors
    lexical: Lexical | ShardedLexical
    manifest_mtime: int
    behind: bool = False  # an older version, served while a writer finishes the newer one
    # The store pinned at the version this state was chosen for (one SQLite read
    # transaction): searches and article lookups read it, so they agree with each other
    # whatever is committed meanwhile. Its version is `version`, or later where the state
    # is `behind`; then hits on chunks it no longer holds are dropped (`Index.search`).
    view: Store | None = None


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Reads:
    """The version-keeping half of `Index` (see the module docstring), and what an index
    is to the modules that write it (`writer`, `derived`, `uploads`, `rebuild`): they take
    a `Reads`, and only `Index`, above them all, is the whole."""

    path: Path
    store: Store  # the live store: each statement its own snapshot
    _embedder: Embedder | None
    _meta: dict[str, str]
    model: str
    dim: int
    fingerprint: str | None
    chunking: ChunkSpec
    kind: str
    requested: str
    sentences: bool  # whether its writes store sentence vectors (`rag.index.sentences`)
    embedder: Embedder  # made from `model` on first use (`Index.embedder`)
    cache_path: Path  # the vector cache its writes embed through (`rag.embed.cache`)

    def _init_reads(self) -> None:
        self._lock = threading.RLock()
        self._loaded: State | None = None
        self._previous: Store | None = None  # the view before the current one (lookups)
        self._local = threading.local()  # per thread: (view, article ids) of its last search
        self._store_id = _file_id(self.path / "store.sqlite")

    def pin(self) -> Store:
        """A new connection to the store, held at its current version."""
        path = self.path / "store.sqlite"
        try:
            return Store(path, readonly=not os.access(self.path, os.W_OK), pinned=True)
        except IndexWriteError:  # a full disk: SQLite cannot create its side files
            return Store(path, readonly=True, pinned=True)

    @property
    def _state(self) -> State | None:
        return self._loaded

    @_state.setter
    def _state(self, state: State | None) -> None:
        old = self._loaded
        if state is not None and state.view is None:
            state.view = self.pin()  # set by a writer holding the lock: the store is there
        if old is not None and old is not state and old.view is not None:
            self._previous = old.view  # the last hits of some thread may still read it
        self._loaded = state

    def _current(self) -> State:
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

    # `Index` gives these two: they need `rag.index.derived` and `Index.open`, above here.
    def _load_state(self) -> State:
        """The derived state searches use now (`rag.index.derived.load_state`)."""
        raise NotImplementedError

    def _reopen(self) -> Reads:
        """This folder opened afresh (`Index.open`), with the embedder it has."""
        raise NotImplementedError

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
            new = self._reopen()
        except ModelMismatchError as e:
            raise ModelMismatchError(f"{e}. It was rebuilt while open here: restart the app "
                                     "or command to search it") from e
        self.store, self._meta = new.store, new._meta
        self.model, self.dim, self.fingerprint = new.model, new.dim, new.fingerprint
        self.chunking, self.kind, self.requested = new.chunking, new.kind, new.requested
        self.sentences = new.sentences  # a rebuild may have changed the choice
        self._store_id, self._state = now, None
        self._previous = None  # hits of the old store no longer read it: all reads are new
        return True

    def _view(self) -> Store:
        """The store as of the version searches serve now, checked as a search checks it.
        Before any search, the live store (after following a rebuild): no FAISS is loaded."""
        if self._state is None:
            with self._lock:
                self._follow_rebuild()
            if self._state is None:
                return self.store
        view = self._current().view
        assert view is not None
        return view

    def _bound(self, article_id: str) -> Store:
        """The view this thread's last search read, if `article_id` was among its hits and
        the index still keeps that view; else the current one."""
        ref, ids = getattr(self._local, "last", (None, frozenset()))
        view: Store | None = ref() if ref is not None and article_id in ids else None
        if view is not None and view in (self._previous, getattr(self._state, "view", None)):
            return view
        return self._view()

    def _remember(self, view: Store, hits: list[Hit]) -> None:
        """This thread's last search read `view` for these hits (`_bound`)."""
        self._local.last = (weakref.ref(view), frozenset(h.article_id for h in hits))

    def close(self) -> None:
        self.store.close()
        for view in (self._previous, getattr(self._loaded, "view", None)):
            if view is not None:
                view.close()


__all__ = ["Reads", "State"]
