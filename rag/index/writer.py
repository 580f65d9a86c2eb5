"""Writing to an index: every writer (add, sync, upload, remove; rebuild through `add`)
runs here, under the folder's one write lock.

An add reads the articles, decides for each what it needs (`_Run.claim`), embeds the
changed ones a batch at a time through the vector cache (so a killed run's embedding
work is not lost), and commits everything in one store transaction; then the derived
FAISS/BM25 files follow. An unchanged article found at a new path (a renamed file, a
moved folder) is re-pointed in that transaction, not embedded again. A sync makes the
index equal to the folders it is given (`rag.index.sync`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.embed.cache import CACHE_FILE, VectorCache, cached_embed
from rag.embed.embedder import Embedder, ReleasesBulk
from rag.errors import InputError
from rag.faults import checkpoint
from rag.index.derived import finish_derived, update_derived
from rag.index.folder import WriteLock, clean_staging, count_items
from rag.index.progress import Progress, ProgressBar, Stages, timed
from rag.index.reads import Reads
from rag.index.rows import Upsert
from rag.index.sentences import SENTENCE_CHARS, SentenceBlock, embed_blocks
from rag.index.store import Store
from rag.index.sync import UPLOAD_NAMESPACE, SyncScope
from rag.ingest.articles import Article, Skipped, iter_articles
from rag.ingest.chunking import Chunk, ChunkSpec, chunk_article

_EMBED_BATCH = 128  # chunks per embedding call (and per vector-cache write)

# The title heads every embedded chunk (it gives a chunk its subject). A headline is
# 8-15 words; 32 words (~45 word pieces) leave 200+ of MiniLM's 256 for the passage.
# Longer titles are cut for embedding only: the store keeps and shows the whole title.
TITLE_WORDS = 32
TITLE_CHARS = 300


def header_title(title: str) -> str:
    """`title` as it heads an embedded chunk: at most TITLE_WORDS words, TITLE_CHARS chars."""
    words = title.split()
    short = " ".join(words[:TITLE_WORDS])
    return short[:TITLE_CHARS] if len(short) > TITLE_CHARS or len(words) > TITLE_WORDS \
        else title


def chunk_for(embedder: Embedder, article: Article, spec: ChunkSpec) -> list[Chunk]:
    """`article`'s chunks, each (with its title) within the embedder's token window."""
    count = getattr(embedder, "count_tokens", None)
    limit = getattr(embedder, "max_tokens", None)
    fits: Callable[[str], bool] | None = None
    head = header_title(article.title)
    if count is not None and limit is not None:
        fits = lambda text: bool(count(f"{head}\n{text}") <= limit)  # noqa: E731
    return chunk_article(article.id, article.text, spec, fits)


def embedding_texts(article: Article, chunks: Sequence[Chunk]) -> list[str]:
    """What is embedded for each chunk: the title gives a chunk its subject."""
    head = header_title(article.title)
    return [f"{head}\n{c.text}" for c in chunks]


@dataclass(frozen=True)
class Prepared:
    """An article read, chunked and embedded by a `Pipeline` (another process, a cluster)."""

    article: Article
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray | None  # one row per chunk; None: not embedded (unchanged article)
    # Each chunk's sentence vectors (`rag.index.sentences.embed_blocks`); None: none.
    blocks: tuple[SentenceBlock | None, ...] | None = None


class Pipeline(Protocol):
    """Reads, chunks and embeds the articles under `roots` for `index`, in `iter_articles`
    order. `known` maps indexed article ids to content hashes: an article whose hash is
    unchanged need not be chunked or embedded. Bad inputs come back as `Skipped`."""

    def run(self, index: Reads, roots: Sequence[Path],
            known: Mapping[str, str]) -> Iterator[Article | Skipped | Prepared]: ...


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
    kept: int = 0  # articles a sync kept: their file or folder could not be read or checked
    moved: int = 0  # unchanged articles found at a new path: re-pointed, not embedded again
    embedded: int = 0  # texts the model embedded (chunks, and sentences where stored)
    reused: int = 0  # texts whose vectors came from the vector cache (a killed run's work)
    stages: Stages = field(default_factory=Stages)  # where `seconds` went

    @property
    def status(self) -> str:
        """"ok", or "partial" when some inputs were skipped."""
        return "partial" if self.skipped else "ok"


def add(index: Reads, paths: Iterable[str | os.PathLike[str]], *, sync: bool = False,
        progress: Progress = True, lock_timeout: float = 10.0,
        pipeline: Pipeline | None = None, follow_links: bool = False,
        namespace: str = "") -> IndexReport:
    """`Index.add`: see there."""
    roots = [Path(p) for p in paths]
    for r in roots:
        if not r.exists():  # before anything is read: a missing root removes nothing
            raise InputError(f"{r} does not exist; give a file or folder of articles")
    with WriteLock(index.path, timeout=lock_timeout):
        return add_locked(index, roots, sync=sync, progress=progress, pipeline=pipeline,
                          follow_links=follow_links, namespace=namespace)


def add_locked(index: Reads, roots: list[Path], *, sync: bool = False,
               progress: Progress = True, pipeline: Pipeline | None = None,
               follow_links: bool = False, namespace: str = "") -> IndexReport:
    """`add` for a caller that holds the index's write lock (`rag.index.uploads`)."""
    t0 = time.perf_counter()
    clean_staging(index.path)  # a killed rebuild's half-built folder
    writer = Store(index.path / "store.sqlite")
    cache = VectorCache(index.cache_path, index.model, index.dim)
    try:
        migrate_upload_ids(writer, index.path / "uploads")
        run = _Run(index, writer, roots, cache, sync=sync, follow_links=follow_links,
                   namespace=namespace, pipeline=pipeline)
        return run.run(progress, t0)
    finally:
        cache.close()
        writer.close()


def remove(index: Reads, article_ids: Sequence[str], lock_timeout: float = 10.0) -> int:
    """`Index.remove`: see there."""
    with WriteLock(index.path, timeout=lock_timeout):
        clean_staging(index.path)
        writer = Store(index.path / "store.sqlite")
        try:
            renamed = migrate_upload_ids(writer, index.path / "uploads")
            live = writer.article_hashes()
            ids = [i for i in (renamed.get(a, a) for a in article_ids) if i in live]
            if ids:
                version, new_ids, gone_ids = writer.apply([], ids)
                update_derived(index, writer, version, new_ids, gone_ids)
            return len(ids)
        finally:
            writer.close()


def migrate_upload_ids(writer: Store, uploads: Path) -> dict[str, str]:
    """Give uploads indexed before the upload namespace existed their namespaced id, in
    place (chunks and vectors stay: nothing is re-embedded or duplicated). Old id -> new."""
    if not uploads.is_dir():
        return {}
    # The app stores uploads by their resolved path: a string compare, no syscall per article.
    roots = {os.path.realpath(uploads), os.path.abspath(uploads)}
    pairs = {aid: UPLOAD_NAMESPACE + aid for aid, p in writer.article_paths().items()
             if p and not aid.startswith(UPLOAD_NAMESPACE) and os.path.dirname(p) in roots}
    return writer.rename_articles(pairs) if pairs else {}


class _Embed:
    """The embedder through the vector cache, counting what the model really embedded
    and the seconds it took."""

    def __init__(self, embedder: Embedder, cache: VectorCache) -> None:
        self.embedder, self.cache = embedder, cache
        self.keys: list[bytes] = []
        self.embedded = self.reused = 0
        self.seconds = 0.0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = time.perf_counter()
        vecs, keys, n = cached_embed(self.embedder, texts, self.cache)
        self.seconds += time.perf_counter() - t
        self.keys += keys
        self.embedded += n
        self.reused += len(texts) - n
        return vecs


class _Run:
    """One add under the write lock. `run` reads top to bottom: read and decide, embed,
    commit, update the derived files."""

    def __init__(self, index: Reads, writer: Store, roots: list[Path], cache: VectorCache,
                 *, sync: bool, follow_links: bool, namespace: str,
                 pipeline: Pipeline | None) -> None:
        self.index, self.writer, self.roots, self.cache = index, writer, roots, cache
        self.sync, self.follow_links, self.namespace = sync, follow_links, namespace
        self.pipeline = pipeline
        self.hashes = writer.article_hashes()
        self.by_hash = {h: i for i, h in self.hashes.items()}
        self.paths_of = writer.article_paths()
        self.sentences = index.sentences  # store sentence vectors too (off by default)
        self.sentence_chars = int(writer.meta().get("sentence_chars", SENTENCE_CHARS))
        self.embed = _Embed(index.embedder, cache)
        self.scope = SyncScope(roots)
        self.seen: set[str] = set()  # ids read in this run
        self.skipped: list[Skipped] = []
        self.moves: dict[str, Article] = {}  # stored id -> the same content at its new path
        self.requeue: list[Article] = []  # a move undone: embed it after all
        self.renamed: list[str] = []  # ids re-keyed by a re-embedding (see `claim`)
        self.removed: list[str] = []
        self.counts = {"added": 0, "updated": 0, "unchanged": 0, "chunks": 0, "kept": 0}

    def run(self, progress: Progress, t0: float) -> IndexReport:
        bar = ProgressBar(progress, doing="counting the articles")
        try:
            bar.total = count_items(self.roots, follow_links=self.follow_links)
            before, made, t = self.writer.version, [0.0], time.perf_counter()
            version, new_ids, gone_ids = self.writer.apply(
                timed(self.upserts(bar), made), self.removals(), self.moves)
            store = time.perf_counter() - t - made[0]  # the transaction's own time
            if isinstance(self.index.embedder, ReleasesBulk):
                self.index.embedder.release_bulk()  # the build's peak comes next: no model beside it
            bar.doing("writing the search files (FAISS, BM25)")
            t = time.perf_counter()
            if version != before:
                update_derived(self.index, self.writer, version, new_ids, gone_ids)
            else:
                finish_derived(self.index, self.writer)
            derived = time.perf_counter() - t
        finally:
            bar.close()
        self.cache.committed(self.embed.keys)  # now in the store: evicted first
        articles, chunks = self.writer.counts()
        c, seconds, embed = self.counts, time.perf_counter() - t0, self.embed.seconds
        return IndexReport(
            added=c["added"], updated=c["updated"], removed=len(self.renamed) + len(self.removed),
            unchanged=c["unchanged"], skipped=tuple(self.skipped), chunks_added=c["chunks"],
            articles=articles, chunks=chunks, seconds=seconds, kept=c["kept"],
            moved=len(self.moves), embedded=self.embed.embedded, reused=self.embed.reused,
            stages=Stages(max(seconds - embed - store - derived, 0.0), embed, store, derived))

    # -- 1. read, and decide what each article needs ---------------------------------------
    def upserts(self, bar: ProgressBar) -> Iterator[Upsert]:
        """Articles to write, embedded a batch at a time as the store consumes them."""
        bar.doing("reading")
        source = iter_articles(self.roots, follow_links=self.follow_links) \
            if self.pipeline is None else self.pipeline.run(self.index, self.roots, self.hashes)
        pending: list[tuple[Article, list[Chunk]]] = []
        for item in source:
            if isinstance(item, Skipped):
                self.skip(item, bar)
                continue
            art = self.claim(item.article if isinstance(item, Prepared) else item, bar)
            if art is None:
                continue
            if isinstance(item, Prepared) and item.vectors is not None:  # embedded elsewhere
                checkpoint("embedding")
                bar.step(art.path or art.id, len(item.chunks))
                self.counts["chunks"] += len(item.chunks)
                yield (art, item.chunks, item.vectors) if item.blocks is None else \
                    (art, item.chunks, item.vectors, item.blocks)
                continue
            self.chunked(art, pending, bar)
            if sum(len(cs) for _, cs in pending) >= _EMBED_BATCH:
                yield from self.embedded(pending, bar)
                pending = []
        for art in self.requeue:
            self.chunked(art, pending, bar)
        yield from self.embedded(pending, bar)
        bar.doing("committing")

    def chunked(self, art: Article, pending: list[tuple[Article, list[Chunk]]],
                bar: ProgressBar) -> None:
        try:
            pending.append((art, chunk_for(self.index.embedder, art, self.index.chunking)))
        except InputError as e:  # e.g. a title longer than the model reads: this one only
            self.counts["updated" if art.id in self.hashes else "added"] -= 1
            self.skip(Skipped(art.path or art.id, str(e), art.path or ""), bar)

    def skip(self, s: Skipped, bar: ProgressBar) -> None:
        self.skipped.append(s)
        self.scope.unreadable.add(os.path.abspath(s.source))
        bar.step(s.path)

    def claim(self, art: Article, bar: ProgressBar) -> Article | None:
        """The article as it will be written, or None (skipped, unchanged or moved:
        recorded)."""
        where = art.path or art.id
        if self.namespace:
            art = replace(art, id=self.namespace + art.id)
        elif art.id.startswith(UPLOAD_NAMESPACE):
            self.skip(Skipped(where, f"ids starting with {UPLOAD_NAMESPACE!r} are kept for "
                              "the app's uploads; give this article another id"), bar)
            return None
        if art.id in self.seen:
            self.skip(Skipped(where, f"duplicate id {art.id!r} in this run"), bar)
            return None
        self.seen.add(art.id)
        if art.path:
            self.scope.files_read.add(os.path.abspath(art.path))
        if art.id in self.moves and self.moves[art.id].id != art.id:
            self.undo_move(art)
        owner = self.paths_of.get(art.id)
        moved = bool(owner and art.path and os.path.abspath(owner) != os.path.abspath(art.path))
        if moved and not self.sync and not self.scope.under_roots(owner or "") \
                and os.path.lexists(owner or ""):
            self.skip(Skipped(where, f"id {art.id!r} belongs to the article from {owner}; give "
                              "this one another id, or index with --sync to make the index "
                              "follow the folders given"), bar)
            return None
        if self.hashes.get(art.id) == art.content_hash:
            if moved and (self.sync or not os.path.lexists(owner or "")):
                self.moves[art.id] = art  # the same article at a new path: re-point it
            else:
                self.counts["unchanged"] += 1
            bar.step(where)
            return None
        twin = self.by_hash.get(art.content_hash)
        if twin is not None and twin != art.id:
            if not self.takes_over(twin):
                self.skip(Skipped(where, f"duplicate of {twin}"), bar)
                return None
            self.by_hash[art.content_hash] = art.id
            if art.id not in self.hashes:  # a renamed file: its article, re-keyed in place
                self.moves[twin] = art
                bar.step(where)
                return None
            self.renamed.append(twin)  # its id holds other content: re-embed, drop the twin
        if self.by_hash.get(self.hashes.get(art.id, "")) == art.id:
            del self.by_hash[self.hashes[art.id]]  # its old content is no longer here
        self.by_hash[art.content_hash] = art.id
        self.counts["updated" if art.id in self.hashes else "added"] += 1
        return art

    def undo_move(self, art: Article) -> None:
        """`art` comes with the id an earlier article of this run was to take over: that
        one is not a rename after all. Embedded under its own id, or a duplicate of `art`."""
        other = self.moves.pop(art.id)
        if other.content_hash == art.content_hash:
            self.skipped.append(Skipped(other.path or other.id, f"duplicate of {art.id}"))
            self.by_hash[art.content_hash] = art.id
        else:
            self.requeue.append(other)
            self.counts["added"] += 1

    def takes_over(self, twin: str) -> bool:
        """Whether an article with `twin`'s content under another id replaces it: its
        file is gone, or (a sync) lies outside the folders given."""
        path = self.paths_of.get(twin)
        if not path or twin in self.seen or twin in self.moves:
            return False
        return not os.path.lexists(path) or (
            self.sync and not twin.startswith(UPLOAD_NAMESPACE)
            and not self.scope.under_roots(path))

    # -- 2. embed (through the cache: a killed run's batches are not embedded again) --------
    def embedded(self, pending: list[tuple[Article, list[Chunk]]],
                 bar: ProgressBar) -> Iterator[Upsert]:
        if not pending:
            return
        bar.doing(f"embedding {sum(len(cs) for _, cs in pending)} chunks")
        vecs = self.embed([t for a, cs in pending for t in embedding_texts(a, cs)])
        # Sentence vectors, where the index stores them (`Index.sentences`: off by default).
        sents = embed_blocks(self.embed, [(a.text, cs) for a, cs in pending],
                             self.sentence_chars) if self.sentences else [None] * len(pending)
        checkpoint("embedding")
        bar.doing("reading")
        n = 0
        for (a, cs), blocks in zip(pending, sents):
            bar.step(a.path or a.id, len(cs))  # an article counts as done once it is embedded
            yield (a, cs, vecs[n:n + len(cs)]) if blocks is None else \
                (a, cs, vecs[n:n + len(cs)], blocks)
            n += len(cs)
            self.counts["chunks"] += len(cs)

    # -- 3. removals: renames, and with sync the articles known to be gone ------------------
    def removals(self) -> Iterator[str]:
        """Evaluated after every file was read (the store consumes upserts first)."""
        yield from self.renamed
        if not self.sync:
            return
        settled = self.seen | set(self.moves) | set(self.renamed)
        self.removed, self.counts["kept"] = self.scope.removals(self.paths_of, settled,
                                                                self.skipped)
        yield from self.removed


__all__ = ["CACHE_FILE", "UPLOAD_NAMESPACE", "IndexReport", "Pipeline", "Prepared",
           "chunk_for", "embedding_texts", "header_title"]
