"""Indexing on Ray: files are read, parsed and chunked in Ray Data tasks, embedded in a
pool of embedder actors, and streamed back in order to the one process that writes.

The writer is `Index.add` as on one machine (this module is only its `Pipeline`): it
decides what is new, changed, a duplicate or gone, commits one SQLite transaction and
swaps the manifest, so every guarantee of the local path holds (incremental sync by
content hash, no duplicates, deletes, the model check, old-or-new after a kill -9).

Ray is imported on first use, never at `import rag`.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import InputError
from rag.index.facade import Prepared, chunk_for, embedding_texts
from rag.index.sentences import SENTENCE_CHARS
from rag.ingest.articles import Article, Skipped, articles_in_file, iter_files
from rag.ingest.chunking import ChunkSpec

if TYPE_CHECKING:
    from rag.embed.embedder import Embedder
    from rag.index.reads import Reads

INSTALL_HINT = 'indexing on Ray needs the scale extra: pip install ".[scale]" (or pip install "ray[data]")'
LOCAL = "local"
# Files per parsing task: parsing a news article takes ~1-5 ms, a Ray task ~1 ms to
# schedule; 32 files keep the overhead small and the first batch quick.
FILES_PER_TASK = 32
# Articles per embedding call in an actor: ~8 chunks each (news-dev), so ~128 chunks, the
# local path's batch (`_EMBED_BATCH` in the facade).
ARTICLES_PER_BATCH = 16
# Blocks of parsed articles handed to the actors: ~1 MB is ~100 news articles with their
# chunks, so a corpus in one big JSONL file still spreads over every actor (Ray's default
# block, 128 MB, would give them one block between them).
BLOCK_BYTES = 1024**2
# An embedder actor per CPU slot takes three quarters of it, and parsing tasks the rest:
# actors of a whole CPU each would leave parsing none, and the pipeline would wait forever
# (it did: ray.init(num_cpus=2), two actors). Parsing costs far less than embedding.
ACTOR_CPUS = 0.75
PARSE_TASK_CPUS = 0.25
# The in-process Ray's object store: the stream holds a few batches of parsed articles
# and vectors (~1 MB each), not the corpus; Ray's default (30% of RAM) is far more.
LOCAL_OBJECT_STORE = 512 * 1024**2
# Fixed text for the driver's one bf16-or-fp32 timing (the embedder's own trial).
_TRIAL_TEXT = ("The harbour reopened on Monday after a three-day storm closed the port, and "
               "ferries resumed service while engineers inspected the damaged northern pier.")


def import_ray() -> Any:
    """The `ray` module, or an `InputError` that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError(INSTALL_HINT) from e
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at `address` (`RAG_RAY_ADDRESS`, else `RAY_ADDRESS`), or start
    one in this process for `local`; an already connected driver is reused."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAG_RAY_ADDRESS") or LOCAL
    # Ray's own notices (auth token, progress bars off) are noise beside the writer's bar;
    # errors still show.
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR,
             "log_to_driver": False}
    if address == LOCAL:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1,
                 object_store_memory=LOCAL_OBJECT_STORE, **quiet)
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise InputError(f"cannot reach the Ray cluster at {address!r} ({e}); start one "
                             "with `ray start --head`, or use `--ray local`") from e
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # A corpus smaller than one block per actor leaves some idle: nothing to act on.
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors",
                            category=UserWarning)
    return ray


def driver_bf16(embedder: Any) -> bool:
    """The precision every actor uses, chosen once here: the embedder's own setting, or
    its bf16-vs-fp32 timing run on the driver. Actors never time it themselves, so all
    vectors come from one precision."""
    from rag.embed.embedder import BF16_MIN_BATCH

    if embedder.bf16 is not None:
        return bool(embedder.bf16)
    while embedder.measuring():
        embedder.embed([_TRIAL_TEXT] * BF16_MIN_BATCH)
    return bool(embedder.bulk_bf16())


def actor_embedder(embedder: Embedder, threads: int = 1) -> Callable[[], Embedder]:
    """A picklable recipe that makes `embedder`'s twin inside an actor: the same model at
    the driver's precision, with `threads` torch threads (its CPU slots). Other embedders
    travel as they are (pickled)."""
    from rag.embed.embedder import SentenceTransformerEmbedder

    if isinstance(embedder, SentenceTransformerEmbedder):
        return functools.partial(SentenceTransformerEmbedder, embedder.name, threads=threads,
                                 bf16=driver_bf16(embedder), batch_size=embedder.batch_size)
    try:
        from rag.embed.onnx import OnnxEmbedder
    except ImportError:  # an install without the ONNX backend
        OnnxEmbedder = None  # type: ignore[assignment,misc]
    if OnnxEmbedder is not None and isinstance(embedder, OnnxEmbedder):
        # int8 is in its name; an fp32 model's bulk work may run on torch's bf16.
        return functools.partial(OnnxEmbedder, embedder.name, threads=threads,
                                 bf16=driver_bf16(embedder))
    return functools.partial(_same, embedder)


def _same(embedder: Embedder) -> Embedder:
    return embedder


# One embedder per worker process and recipe: parsing tasks need its tokenizer to cut
# chunks that fit, and Ray reuses a worker process for many tasks.
_WORKER_EMBEDDERS: dict[bytes, Embedder] = {}


def _worker_embedder(recipe: Callable[[], Embedder]) -> Embedder:
    from ray import cloudpickle  # pickles what plain pickle cannot (test fakes, lambdas)

    key: bytes = cloudpickle.dumps(recipe)  # type: ignore[no-untyped-call]
    if key not in _WORKER_EMBEDDERS:
        _WORKER_EMBEDDERS[key] = recipe()
    return _WORKER_EMBEDDERS[key]


@functools.lru_cache(maxsize=2)
def _known(ref: Any) -> Mapping[str, str]:
    import ray

    return dict(ray.get(ref))


def parse_files(batch: dict[str, np.ndarray], *, known: Any, spec: ChunkSpec,
                recipe: Callable[[], Embedder]) -> Iterator[dict[str, list[bytes]]]:
    """Ray Data task: listed files to pickled `Skipped`, unchanged `Article`s, or
    `Prepared` articles (chunked, not yet embedded), in file order, a few articles at a
    time (one JSONL file of a million articles must reach every actor). A file that
    fails is reported with its path and reason; the other files of the batch go on."""
    if not isinstance(known, Mapping):  # an object reference: fetched once per process
        known = _known(known)
    out: list[bytes] = []
    for raw in batch["entry"]:
        entry = pickle.loads(raw)
        if isinstance(entry, Skipped):
            out.append(raw)
            continue
        path, rel = entry
        items: list[Article | Skipped | Prepared] = []
        try:
            for item in articles_in_file(Path(path), rel):
                if isinstance(item, Skipped) or known.get(item.id) == item.content_hash:
                    items.append(item)
                else:
                    chunks = chunk_for(_worker_embedder(recipe), item, spec)
                    items.append(Prepared(item, tuple(chunks), None))
        except Exception as e:  # a worker must not lose the batch over one file
            items = [Skipped(str(path), f"failed on a Ray worker ({type(e).__name__}: {e})",
                             str(path))]
        out.extend(pickle.dumps(i) for i in items)
        if len(out) >= ARTICLES_PER_BATCH:
            yield {"item": out}
            out = []
    if out:
        yield {"item": out}


class EmbedActor:
    """Ray Data actor: embeds the chunks of `Prepared` articles, and with `sentences`
    their sentences (as the local writer does for an index that stores them), with one
    embedder loaded once. On a GPU node the model moves to the GPU. With `cache` (the
    index's vector cache, where the workers can reach its file) vectors embedded before a
    kill are looked up instead of embedded again."""

    def __init__(self, recipe: Callable[[], Embedder], gpu: bool = False,
                 sentence_chars: int = SENTENCE_CHARS, cache: str | None = None,
                 sentences: bool = False) -> None:
        from rag.embed.cache import VectorCache

        self.embedder = recipe()
        self.sentences, self.sentence_chars = sentences, sentence_chars
        self.cache = VectorCache(Path(cache), self.embedder.name, self.embedder.dim) \
            if cache else None
        if gpu:
            model = getattr(self.embedder, "model", None)
            if model is not None and hasattr(model, "to"):
                model.to("cuda")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        items = [pickle.loads(b) for b in batch["item"]]
        todo = [i for i, x in enumerate(items) if isinstance(x, Prepared) and x.vectors is None]
        try:
            done = self._prepare([items[i] for i in todo])
        except Exception:  # find the article that fails; embed the others
            done = [self._one(items[i]) for i in todo]
        for i, d in zip(todo, done):
            items[i] = d
        return {"item": [pickle.dumps(x) for x in items]}

    def _embed(self, texts: list[str]) -> np.ndarray:
        from rag.embed.cache import cached_embed

        return cached_embed(self.embedder, texts, self.cache)[0]

    def _prepare(self, todo: list[Prepared]) -> list[Prepared | Skipped]:
        from rag.index.sentences import embed_blocks

        vecs = self._embed([t for x in todo for t in embedding_texts(x.article, x.chunks)])
        blocks = embed_blocks(self._embed, [(x.article.text, x.chunks) for x in todo],
                              self.sentence_chars) if self.sentences else [None] * len(todo)
        out: list[Prepared | Skipped] = []
        n = 0
        for x, b in zip(todo, blocks):
            k = len(x.chunks)
            out.append(Prepared(x.article, x.chunks, vecs[n:n + k],
                                None if b is None else tuple(b)))
            n += k
        return out

    def _one(self, item: Prepared) -> Prepared | Skipped:
        try:
            return self._prepare([item])[0]
        except Exception as e:
            a = item.article
            return Skipped(a.path or a.id, f"embedding failed on a Ray worker "
                                           f"({type(e).__name__}: {e})", a.path or "")


@dataclass
class RayPipeline:
    """`Index.add(..., pipeline=RayPipeline("local"))`: read, parse and chunk in Ray Data
    tasks and embed in `actors` embedder actors (default: one per CPU slot, or one per
    GPU where the cluster has GPUs). `address` as for `connect`."""

    address: str | None = None
    actors: int | None = None
    num_cpus: int | None = None  # for a `local` Ray only

    @property
    def _local(self) -> bool:
        return (self.address or os.environ.get("RAG_RAY_ADDRESS") or LOCAL) == LOCAL

    def run(self, index: Reads, roots: Sequence[Path],
            known: Mapping[str, str]) -> Iterator[Article | Skipped | Prepared]:
        ray = connect(self.address, num_cpus=self.num_cpus)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the order iter_articles gives
        ctx.enable_progress_bars = False  # the writer's progress bar counts articles
        ctx.target_max_block_size = BLOCK_BYTES
        entries = [{"entry": pickle.dumps(e if isinstance(e, Skipped) else (str(e[0]), e[1]))}
                   for e in iter_files(roots)]
        if not entries:
            return
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = float(resources.get("CPU", 1))
        size = self.actors or gpus or max(1, int(cpus))
        if not gpus and size * ACTOR_CPUS + PARSE_TASK_CPUS > cpus:
            raise InputError(f"{size} embedder actors need {size * ACTOR_CPUS + PARSE_TASK_CPUS:g}"
                             f" CPUs; the Ray cluster has {cpus:g}: ask for fewer actors")
        recipe = actor_embedder(index.embedder)
        chars = int(index.store.meta().get("sentence_chars", SENTENCE_CHARS))  # as the writer
        # The cache file is the index's, on this machine: a cluster's workers reach it only
        # through a shared file system, so only a local Ray uses it.
        cache = str(index.cache_path) if self._local else None
        where = {"num_gpus": 1} if gpus else {"num_cpus": ACTOR_CPUS}
        ds = ray.data.from_items(entries, override_num_blocks=max(
            1, -(-len(entries) // FILES_PER_TASK)))
        ds = ds.map_batches(parse_files, batch_size=FILES_PER_TASK, num_cpus=PARSE_TASK_CPUS,
                            fn_kwargs={"known": ray.put(dict(known)), "spec": index.chunking,
                                       "recipe": recipe})
        ds = ds.map_batches(EmbedActor, batch_size=ARTICLES_PER_BATCH,
                            compute=ray.data.ActorPoolStrategy(size=size),
                            fn_constructor_kwargs={"recipe": recipe, "gpu": bool(gpus),
                                                   "sentence_chars": chars, "cache": cache,
                                                   "sentences": index.sentences},
                            **where)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for raw in batch["item"]:
                yield pickle.loads(raw)


__all__ = ["INSTALL_HINT", "RayPipeline", "connect", "import_ray"]
