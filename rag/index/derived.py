"""The derived search state (FAISS + BM25) of one store version, and bringing it up to date
after a write. The store is the truth; these are caches of it, tagged with its version.
A sharded index keeps one pair per shard (`rag.index.shards`, split by `reshard`); the
same `persist` writes both kinds."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rag.errors import IndexLockedError, IndexWriteError
from rag.faults import checkpoint
from rag.index.folder import (
    WriteLock,
    fsync_file,
    modified_ns,
    read_manifest,
    write_json_atomic,
)
from rag.index.lexical import Lexical
from rag.index.reads import Reads, State
from rag.index.shards import ShardedLexical, ShardedVectors
from rag.index.shards import build as build_shards
from rag.index.shards import load as load_shards
from rag.index.store import FORMAT, Store
from rag.index.vectors import Vectors, choose_kind


def persist(index: Reads, state: State, store: Store | None = None) -> None:
    """Write derived files for `state` under new names, then swap the manifest: one FAISS +
    BM25 pair, or one per shard (`rag.index.shards`), all listed in it, so a reader sees
    every file of the old version or every file of the new."""
    vecs, lex = state.vectors, state.lexical
    if isinstance(vecs, ShardedVectors) and isinstance(lex, ShardedLexical):
        parts = [(v, b, f".s{i}") for i, (v, b) in enumerate(zip(vecs.shards, lex.shards))]
    else:
        assert isinstance(vecs, Vectors) and isinstance(lex, Lexical)
        parts = [(vecs, lex, "")]
    listed = []
    try:
        for v, b, shard in parts:
            vname, bname = f"vectors-{state.version}{shard}.faiss", f"bm25-{state.version}{shard}"
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
        files = {"shards": listed} if isinstance(vecs, ShardedVectors) else \
            {"vectors": listed[0]["vectors"], "bm25": listed[0]["bm25"]}
        articles, chunks = (store or index.store).counts()
        write_json_atomic(index.path / "manifest.json", {
            "format": FORMAT, "model": index.model, "dim": index.dim,
            "chunking": asdict(index.chunking), "kind": vecs.kind,
            "requested": index.requested, "model_fingerprint": index.fingerprint,
            "sentences": index.sentences, "version": state.version, **files,
            "articles": articles, "chunks": chunks,
        })
    except OSError as e:
        # Always after the store's commit: the new articles are in; only searches wait.
        raise IndexWriteError(
            f"could not write the search files in {index.path} ({e}). The articles are "
            f"saved (store version {state.version}) and these files are rebuilt from the "
            "store when the index is next opened; free disk space or fix permissions and "
            "run the same command again to finish") from e
    index.kind = vecs.kind
    keep = {name for part in listed for name in (part["vectors"], part["bm25"])}
    for old in index.path.iterdir():
        # Also temporaries an interrupted write left behind (we hold the write lock).
        if old.name.startswith(("vectors-", "bm25-", ".vectors-", ".bm25-")) and \
                old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def persisted(index: Reads, version: int) -> State | None:
    """The derived files on disk, if they are those of `version` and readable."""
    manifest = read_manifest(index.path)
    mtime = modified_ns(index.path / "manifest.json")
    if not manifest or manifest.get("version") != version:
        return None
    try:
        if manifest.get("shards"):  # partitions of one version (rag.index.shards)
            return State(version, *load_shards(index.path, manifest), mtime)
        vec = Vectors.load(index.path / manifest["vectors"], manifest["kind"])
        lex = Lexical.load(index.path / manifest["bm25"])
    except Exception:  # unreadable cache: the caller rebuilds it
        return None
    return State(version, vec, lex, mtime)

def load_state(index: Reads) -> State:
    """The derived state searches use now, with the store pinned where it was chosen: the
    persisted files of the store's version; while a writer finishes a newer one, the state
    already loaded (its own snapshot) or the previous version; else rebuilt from the store."""
    view = index.pin()
    version = view.version
    loaded = persisted(index, version)
    if loaded is not None:
        loaded.view = view
        return loaded
    # Derived files are missing or behind the store. While a writer holds the lock it
    # is between its commit and its manifest swap: serve the version before, as
    # searches already running do (rebuilding 1M vectors here would take minutes).
    if writer_active(index.path):
        manifest = read_manifest(index.path) or {}
        current = index._state
        if current is not None and current.view is not None and \
                current.version >= int(manifest.get("version", -1)):
            current.behind = True  # exact, with its own snapshot; checked again next time
            return current
        previous = persisted(index, int(manifest.get("version", -1)))
        if previous is not None:
            previous.behind, previous.view = True, view
            return previous
    # Else a write was interrupted after its commit: rebuild the derived files from the
    # stored vectors, and persist them if we may write.
    state = rebuild_state(index, version, view)
    try:
        with WriteLock(index.path, timeout=0):
            if index._same_store():  # never derived files of an old store into a new folder
                persist(index, state, view)
    except (IndexLockedError, IndexWriteError, OSError):
        pass
    state.manifest_mtime = modified_ns(index.path / "manifest.json")
    state.view = view
    return state


def writer_active(path: Path) -> bool:
    try:
        with WriteLock(path, timeout=0):
            return False
    except IndexLockedError:
        return True
    except (IndexWriteError, OSError):  # a read-only folder: nobody writes there
        return False

def rebuild_state(index: Reads, version: int, store: Store | None = None) -> State:
    store = store or index.store
    _, n = store.counts()
    kind = "auto" if index.requested == "auto" else index.kind
    shards = len((read_manifest(index.path) or {}).get("shards") or ())
    if shards > 1:  # a sharded index stays sharded (rag.index.shards)
        return State(version, *build_shards(store, index.dim, kind, shards), 0)
    vec = Vectors.build(index.dim, kind, store.iter_live_vectors(), n)
    return State(version, vec, Lexical.build(store.iter_live_texts()), 0)


def update_derived(index: Reads, writer: Store, version: int, new_ids: list[int],
                   gone_ids: list[int]) -> None:
    """Bring FAISS/BM25 up to `version` (incrementally where possible) and persist.
    New rows are read through `writer`: the shared reader connection may be inside
    another thread's read, on the snapshot before the commit."""
    import faiss

    new, gone = np.array(new_ids, np.int64), np.array(gone_ids, np.int64)
    with index._lock:
        old = index._state
        if old is None or old.version != version - 1:
            # Not loaded here (`rag index FILE` never searches): start from the previous
            # version's files rather than rebuilding (and retraining IVF) from scratch.
            old = persisted(index, version - 1)
        state: State | None = None
        # Sharded (not `Vectors`, `Lexical`): the shards are re-derived from the store.
        if old is not None and isinstance(old.vectors, Vectors) and \
                isinstance(old.lexical, Lexical):
            vec = old.vectors
            if old is index._state:  # searches may be using it: change a copy
                vec = Vectors(faiss.clone_index(vec.index), vec.kind)
                if vec.kind == "ivf":
                    vec.index.nprobe = old.vectors.index.nprobe
            if vec.remove(gone):
                vec.add(new, writer.vectors(list(new), index.dim))
                if index.requested == "auto" and vec.kind == "flat" and \
                        choose_kind("auto", vec.size) == "ivf":
                    # Grown past exact search's range: train IVF now, once.
                    vec = Vectors.build(index.dim, "auto", writer.iter_live_vectors(), vec.size)
                lex = old.lexical.updated(new, writer.texts(list(new)), gone)
                state = State(version, vec, lex, 0)
        if state is None:
            state = rebuild_state(index, version, writer)
        persist(index, state, writer)
        state.manifest_mtime = modified_ns(index.path / "manifest.json")
        state.view = index.pin()  # we hold the lock: the store is at `version`
        index._state = state


def finish_derived(index: Reads, writer: Store) -> None:
    """An earlier run committed to the store but never wrote the derived files (killed,
    disk full): finish its job now instead of rebuilding them on every load."""
    if (read_manifest(index.path) or {}).get("version") == writer.version:
        return
    with index._lock:
        state = rebuild_state(index, writer.version, writer)
        persist(index, state, writer)
        state.manifest_mtime = modified_ns(index.path / "manifest.json")
        state.view = index.pin()
        index._state = state


def reshard(index: Reads, shards: int, *, kind: str | None = None,
            lock_timeout: float = 10.0) -> None:
    """Split `index`'s search state into `shards` partitions of its current store version
    (1: back to one partition). Later writes keep the count."""
    with WriteLock(index.path, timeout=lock_timeout):
        writer = Store(index.path / "store.sqlite")
        try:
            k = kind or ("auto" if index.requested == "auto" else index.kind)
            vecs, lex = build_shards(writer, index.dim, k, shards)
            state = State(writer.version, vecs, lex, 0) if shards > 1 else \
                State(writer.version, vecs.shards[0], lex.shards[0], 0)
            persist(index, state, writer)
            state.manifest_mtime = modified_ns(index.path / "manifest.json")
            with index._lock:
                index._state = state
        finally:
            writer.close()
