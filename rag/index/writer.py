"""Writing to an index: every writer (add, sync, upload, remove; rebuild through `add`)
runs here, under the folder's one write lock.

An add reads the articles, decides for each what it needs (`_Run.claim`), embeds the
changed ones a batch at a time through the vector cache (so a killed run's embedding
work is not lost), and commits everything in one store transaction; then the derived
FAISS/BM25 files follow. A sync removes only articles whose files are known to be gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.embed.cache import CACHE_FILE, VectorCache, cached_embed
from rag.embed.embedder import Embedder
from rag.errors import InputError
from rag.faults import checkpoint
from rag.index.derived import finish_derived, update_derived
from rag.index.folder import Progress, ProgressBar, WriteLock, count_items
from rag.index.sentences import SENTENCE_CHARS, SentenceBlock, embed_blocks
from rag.index.store import Store, Upsert
from rag.ingest.articles import Article, Skipped, iter_articles
from rag.ingest.chunking import Chunk, ChunkSpec, chunk_article

if TYPE_CHECKING:
    from rag.index.facade import Index

_EMBED_BATCH = 128  # chunks per embedding call (and per vector-cache write)

# Uploads live in their own id namespace: an upload can never replace another source's
# article, and a corpus article may not take an id in it.
UPLOAD_NAMESPACE = "upload:"

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

    def run(self, index: Index, roots: Sequence[Path],
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
    kept: int = 0  # articles a sync kept because their file or folder could not be read
    embedded: int = 0  # texts the model embedded (chunks and sentences)
    reused: int = 0  # texts whose vectors came from the vector cache (a killed run's work)

    @property
    def status(self) -> str:
        """"ok", or "partial" when some inputs were skipped."""
        return "partial" if self.skipped else "ok"


def add(index: Index, paths: Iterable[str | os.PathLike[str]], *, sync: bool = False,
        progress: Progress = True, lock_timeout: float = 10.0,
        pipeline: Pipeline | None = None, follow_links: bool = False,
        namespace: str = "") -> IndexReport:
    """`Index.add`: see there."""
    t0 = time.perf_counter()
    roots = [Path(p) for p in paths]
    for r in roots:
        if not r.exists():  # before anything is read: a missing root removes nothing
            raise InputError(f"{r} does not exist; give a file or folder of articles")
    with WriteLock(index.path, timeout=lock_timeout):
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


def remove(index: Index, article_ids: Sequence[str], lock_timeout: float = 10.0) -> int:
    """`Index.remove`: see there."""
    with WriteLock(index.path, timeout=lock_timeout):
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
    """The embedder through the vector cache, counting what the model really embedded."""

    def __init__(self, embedder: Embedder, cache: VectorCache) -> None:
        self.embedder, self.cache = embedder, cache
        self.keys: list[bytes] = []
        self.embedded = self.reused = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vecs, keys, n = cached_embed(self.embedder, texts, self.cache)
        self.keys += keys
        self.embedded += n
        self.reused += len(texts) - n
        return vecs


class _Run:
    """One add under the write lock. `run` reads top to bottom: read and decide, embed,
    commit, update the derived files."""

    def __init__(self, index: Index, writer: Store, roots: list[Path], cache: VectorCache,
                 *, sync: bool, follow_links: bool, namespace: str,
                 pipeline: Pipeline | None) -> None:
        self.index, self.writer, self.roots, self.cache = index, writer, roots, cache
        self.sync, self.follow_links, self.namespace = sync, follow_links, namespace
        self.pipeline = pipeline
        self.hashes = writer.article_hashes()
        self.by_hash = {h: i for i, h in self.hashes.items()}
        self.paths_of = writer.article_paths()
        self.sentence_chars = int(writer.meta().get("sentence_chars", SENTENCE_CHARS))
        self.embed = _Embed(index.embedder, cache)
        self.seen: set[str] = set()  # ids read in this run
        self.files_read: set[str] = set()  # files that gave at least one article
        self.unreadable: set[str] = set()  # files/folders with a skip: their articles stay
        self.skipped: list[Skipped] = []
        self.renamed: list[str] = []  # ids re-keyed because their file was renamed
        self.removed: list[str] = []
        self.counts = {"added": 0, "updated": 0, "unchanged": 0, "chunks": 0, "kept": 0}

    def run(self, progress: Progress, t0: float) -> IndexReport:
        before = self.writer.version
        version, new_ids, gone_ids = self.writer.apply(self.upserts(progress), self.removals())
        if version != before:
            update_derived(self.index, self.writer, version, new_ids, gone_ids)
        else:
            finish_derived(self.index, self.writer)
        self.cache.committed(self.embed.keys)  # now in the store: evicted first
        articles, chunks = self.writer.counts()
        c = self.counts
        return IndexReport(
            added=c["added"], updated=c["updated"], removed=len(self.renamed) + len(self.removed),
            unchanged=c["unchanged"], skipped=tuple(self.skipped), chunks_added=c["chunks"],
            articles=articles, chunks=chunks, seconds=time.perf_counter() - t0, kept=c["kept"],
            embedded=self.embed.embedded, reused=self.embed.reused)

    # -- 1. read, and decide what each article needs ---------------------------------------
    def upserts(self, progress: Progress) -> Iterator[Upsert]:
        """Articles to write, embedded a batch at a time as the store consumes them."""
        bar = ProgressBar(progress, count_items(self.roots, follow_links=self.follow_links))
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
                bar.step(art.path or art.id)
                self.counts["chunks"] += len(item.chunks)
                yield (art, item.chunks, item.vectors) if item.blocks is None else \
                    (art, item.chunks, item.vectors, item.blocks)
                continue
            pending.append((art, chunk_for(self.index.embedder, art, self.index.chunking)))
            if sum(len(cs) for _, cs in pending) >= _EMBED_BATCH:
                yield from self.embedded(pending, bar)
                pending = []
        yield from self.embedded(pending, bar)
        bar.close()

    def skip(self, s: Skipped, bar: ProgressBar) -> None:
        self.skipped.append(s)
        self.unreadable.add(os.path.abspath(s.source))
        bar.step(s.path)

    def claim(self, art: Article, bar: ProgressBar) -> Article | None:
        """The article as it will be written, or None (skipped or unchanged: recorded)."""
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
            self.files_read.add(os.path.abspath(art.path))
        owner = self.paths_of.get(art.id)
        if owner and art.path and os.path.abspath(owner) != os.path.abspath(art.path) \
                and not self.under_roots(owner) and os.path.lexists(owner):
            self.skip(Skipped(where, f"id {art.id!r} belongs to the article from {owner}; "
                              "give this one another id"), bar)
            return None
        if self.hashes.get(art.id) == art.content_hash:
            self.counts["unchanged"] += 1
            bar.step(where)
            return None
        twin = self.by_hash.get(art.content_hash)
        if twin is not None and twin != art.id:
            twin_path = self.paths_of.get(twin)
            if twin_path is None or Path(twin_path).exists() or twin in self.seen:
                self.skip(Skipped(where, f"duplicate of {twin}"), bar)
                return None
            self.renamed.append(twin)  # the file was renamed: re-key, don't duplicate
        self.by_hash[art.content_hash] = art.id
        self.counts["updated" if art.id in self.hashes else "added"] += 1
        return art

    # -- 2. embed (through the cache: a killed run's batches are not embedded again) --------
    def embedded(self, pending: list[tuple[Article, list[Chunk]]],
                 bar: ProgressBar) -> Iterator[Upsert]:
        if not pending:
            return
        vecs = self.embed([t for a, cs in pending for t in embedding_texts(a, cs)])
        # The answerer's sentence vectors, stored with the chunks (rag.index.sentences).
        sents = embed_blocks(self.embed, [(a.text, cs) for a, cs in pending],
                             self.sentence_chars)
        checkpoint("embedding")
        n = 0
        for (a, cs), blocks in zip(pending, sents):
            bar.step(a.path or a.id)  # an article counts as done once it is embedded
            yield a, cs, vecs[n:n + len(cs)], blocks
            n += len(cs)
            self.counts["chunks"] += len(cs)

    # -- 3. removals: renames, and with sync the articles known to be gone ------------------
    def removals(self) -> Iterator[str]:
        """Evaluated after every file was read (the store consumes upserts first)."""
        yield from self.renamed
        if not self.sync:
            return
        empty = self.empty_roots()
        for aid, apath in self.paths_of.items():
            if aid in self.seen or aid in self.renamed or not apath or \
                    not self.under_roots(apath):
                continue
            if self.known_gone(apath) and not any(_under(apath, r) for r in empty):
                self.removed.append(aid)
                yield aid
            else:
                self.counts["kept"] += 1

    def known_gone(self, path: str) -> bool:
        """True only when the file was read without this article, or surely does not exist;
        never for a file or folder that could not be read."""
        p = os.path.abspath(path)
        parent = p
        while True:
            if parent in self.unreadable:
                return False
            up = os.path.dirname(parent)
            if up == parent:
                break
            parent = up
        if p in self.files_read:
            return True
        try:
            os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:  # a permission problem: not known to be gone
            return False
        return False  # there, but not read (nor reported): keep it

    def empty_roots(self) -> list[str]:
        """Root folders with nothing in them now, though articles came from them: an
        unmounted drive looks like this. Nothing is removed from them; the user is told."""
        out = []
        for r in self.roots:
            try:
                empty = r.is_dir() and not any(not e.name.startswith(".") for e in os.scandir(r))
            except OSError:
                empty = True
            if empty and any(p and _under(p, str(r)) for p in self.paths_of.values()):
                out.append(str(r))
                self.skipped.append(Skipped(os.path.abspath(r), "the folder is empty (an "
                                            "unmounted drive?); its indexed articles are kept "
                                            "(remove them with --rebuild if that is meant)"))
        return out

    def under_roots(self, path: str) -> bool:
        return any(_under(path, str(r)) for r in self.roots)


def _under(path: str, root: str) -> bool:
    """`path` is `root` or inside it, as spelled or after resolving links."""
    for a, b in ((os.path.abspath(path), os.path.abspath(root)),
                 (os.path.realpath(path), os.path.realpath(root))):
        if a == b or a.startswith(b.rstrip(os.sep) + os.sep):
            return True
    return False


__all__ = ["CACHE_FILE", "UPLOAD_NAMESPACE", "IndexReport", "Pipeline", "Prepared",
           "chunk_for", "embedding_texts", "header_title"]
