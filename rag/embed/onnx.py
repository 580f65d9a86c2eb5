"""The packaged model on ONNX Runtime: a cold process embeds a query in ~0.3 s, not ~6 s.

Importing torch and sentence-transformers costs 5-10 s on this project's 2-core machine,
for a query that then embeds in 5 ms. So the model is exported to ONNX once, into the
user's cache (`rag.embed.export`), and loaded from there with only `onnxruntime` and
`tokenizers` (0.3 s). The export is a cache of the model, not a second model: it is
checked against torch at export (cosine >= 0.9999), and keyed by the model folder's
files, so a changed model is exported again. The int8 variant (`+int8` in the name)
is a different model as far as an index is concerned: its name is recorded in the
manifest, and an index built with it refuses fp32 queries, as for any other model.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed.runtime import (
    DEFAULT_MODEL,
    Bf16Choice,
    available_threads,
    cpu_has_bf16,
    normalize,
    resolve,
    trim_heap,
)
from rag.errors import InputError

INT8 = "+int8"  # name suffix of the int8 dynamically quantized variant
# Batches of 8 texts of similar length: on 2 cores (one thread, texts sorted by length)
# SciFact abstracts embed at 16.7 texts/s in 8s, 14.6 in 16s and 8.4 in 32s.
BATCH = 8
# Calls of this many texts and more are bulk work (indexing), run on the free cores.
BULK_MIN = 32
# Token ids kept from `count_tokens` for the `embed` that follows (the chunker counts
# every chunk with the model's tokenizer; the index embeds them a flush later). One
# flush is 128+ chunks; 4,096 is well beyond it and holds ~4 MB of ids.
_TOKEN_MEMORY = 4096
_SUPPORTED = ("Transformer", "Pooling", "Normalize")


def supported(path: Path) -> bool:
    """Whether the model folder is one this runtime reproduces exactly: a Transformer with
    mean or CLS pooling (and optional normalisation), and a fast tokenizer file."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    return (all(k in _SUPPORTED for k in kinds) and (path / "tokenizer.json").exists()
            and modes in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]))


def model_dim(path: Path) -> int:
    """The sentence vector's size, from the pooling config (no model load)."""
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    return int(pooling["word_embedding_dimension"])


def max_seq_length(path: Path) -> int:
    """Tokens the model reads, as sentence-transformers configures it."""
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


# bf16 is tried only after this many texts of bulk work: loading torch and its trials cost
# ~5 s, more than a small build takes on ONNX Runtime alone (the seed article, a few dozen
# uploads); 500 chunks are ~11 s of fp32 work on 2 cores, ~25 news articles.
BF16_AFTER_TEXTS = 500


class OnnxEmbedder(Bf16Choice):
    """An exported sentence-transformers model run by ONNX Runtime, loaded lazily.

    Bulk work (indexing) of an fp32 model may run on torch with bf16 autocast instead
    (`rag.embed.bf16`) where the CPU has bf16 and it measures faster (`Bf16Choice`);
    `bf16=False` or `RAG_EMBED_BACKEND=onnx` keeps it on ONNX Runtime.

    `threads` fixes ONNX Runtime's intra-op threads (default: one for queries, the cores
    free at the first bulk call for bulk work, see `available_threads`). Its threads never
    spin waiting for work: spinning threads hold a core that a busy neighbour needs and
    slow every call down under load.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int | None = None,
                 bf16: bool | None = None) -> None:
        self.int8 = model.endswith(INT8)
        base = model[: -len(INT8)] if self.int8 else model
        if base == "all-MiniLM-L6-v2":
            base = DEFAULT_MODEL
        self.name = base + (INT8 if self.int8 else "")
        self.base = base
        # What the vector cache keys on: fp32 ONNX gives torch fp32's vectors (cosine 1.0000).
        self.precision = "int8" if self.int8 else "fp32"
        self.source = Path(resolve(base))
        self.threads = threads
        self._session: Any = None
        self._bulk: Any = None
        self._path: Path | None = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()
        self._ids: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.RLock()  # `_sessions_for` opens the query session under it
        self._max = max_seq_length(self.source)
        self._file: Path | None = None  # None: the export in the user's cache
        self.bf16 = False if self.int8 else bf16  # int8 is its own model: never bf16
        self.trials: list[tuple[bool, float]] = []
        self._torch: Any = None  # rag.embed.bf16.TorchBf16, made on the first bf16 call
        self._bf16_threads = 0
        self._bulk_seen = 0  # texts embedded in bulk calls so far

    @classmethod
    def from_file(cls, onnx_file: Path, source: Path, *, threads: int | None = 1) -> OnnxEmbedder:
        """An embedder for a given ONNX file of the model folder `source` (to check an export)."""
        emb = cls(str(source), threads=threads, bf16=False)  # the file itself, always
        emb._file = onnx_file
        return emb

    bf16_after = BF16_AFTER_TEXTS

    def bf16_possible(self) -> bool:
        from rag.embed.bf16 import torch_available

        return (not self.int8 and self._bulk_seen >= self.bf16_after and cpu_has_bf16()
                and torch_available()
                and os.environ.get("RAG_EMBED_BACKEND", "auto").lower() != "onnx")

    @property
    def dim(self) -> int:
        return 384 if self.base == DEFAULT_MODEL else model_dim(self.source)

    @property
    def max_tokens(self) -> int:
        """The model's maximum sequence length in its own word pieces (special tokens included)."""
        return self._max

    def _open(self, threads: int) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initializers are noise
        try:
            return ort.InferenceSession(str(self._path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # a cache damaged on disk: say where it is
            raise InputError(f"cannot load the exported model {self._path} ({e}); delete that "
                             "file and run again to export it afresh") from e

    def _load(self) -> None:
        from tokenizers import Tokenizer

        from rag.embed.export import exported

        self._path = self._file or exported(self.source, self.base, int8=self.int8,
                                            run=run_file)
        # One tokenizer, never truncating: `count_tokens` needs the full length, and `embed`
        # cuts long texts itself (loading a second copy costs ~0.1 s of a cold start).
        tok = Tokenizer.from_file(str(self.source / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        # A query and an answer's sentences run on one thread: a query embeds in ~5 ms on
        # one thread or two, and a second thread sharing a core with a busy neighbour
        # turns milliseconds into seconds.
        session = self._open(self.threads or 1)
        self._inputs = {i.name for i in session.get_inputs()}
        self._session = session
        self._tokenizer = tok  # last: `_ready` tells a loaded embedder by it

    def _ready(self) -> None:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._load()

    def _query_session(self) -> Any:
        """The one-thread session for queries, opened again if bulk work on torch handed
        it back (`embed`)."""
        with self._lock:
            if self._session is None:
                self._session = self._open(self.threads or 1)
            return self._session

    def _bf16_model(self) -> Any:
        """The torch bf16 model (`rag.embed.bf16`), made on the first bf16 call."""
        from rag.embed.bf16 import TorchBf16

        with self._lock:
            if self._torch is None:
                self._torch = TorchBf16(self.source, BATCH)
            return self._torch

    def release_bulk(self) -> None:
        """Hand back what only bulk work holds (the torch model, the bulk sessions) once a
        build has embedded its last batch, so the search files (FAISS, BM25) are written
        beside the query session alone; the next bulk call opens them again (~1 s). The
        runtime chosen stays chosen. news-dev: the build's peak came at that last stage."""
        self._hand_back("_torch", "_bulk")

    def _hand_back(self, *held: str) -> None:
        """Drop these runtimes (attribute names) and return their memory to the system."""
        with self._lock:
            for name in held:
                setattr(self, name, None)
        trim_heap()

    def _sessions_for(self, n: int) -> list[Any]:
        """The sessions a call of `n` texts runs on: the query session, or for bulk work
        one one-thread session per core free when the first bulk call came (or per
        `threads`), opened then. Parallel one-thread sessions beat one session's threads
        on batches this small: on 2 idle cores, 2 x 1 thread embedded SciFact sentences at
        226-232/s against 192-206/s for one 2-thread session, abstracts at the same
        ~30/s (`bench/ingest.py` has the end-to-end figure)."""
        if n < BULK_MIN:
            return [self._query_session()]
        if self._bulk is None:
            with self._lock:
                if self._bulk is None:
                    want = self.threads or available_threads()
                    one = self._query_session() if (self.threads or 1) == 1 else self._open(1)
                    self._bulk = [one, *(self._open(1) for _ in range(want - 1))]
        return list(self._bulk)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text`, including [CLS]/[SEP] (not truncated).
        The ids are kept for a following `embed` of the same text: tokenized once."""
        self._ready()
        ids = self._tokenizer.encode(text).ids
        with self._lock:
            self._ids[text] = ids
            while len(self._ids) > _TOKEN_MEMORY:
                self._ids.popitem(last=False)
        return len(ids)

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        with self._lock:
            known = [self._ids.pop(t, None) for t in texts]
        todo = [i for i, ids in enumerate(known) if ids is None]
        if todo:
            for i, enc in zip(todo, self._tokenizer.encode_batch([texts[i] for i in todo])):
                known[i] = enc.ids
        # Cut as sentence-transformers does: the first max-1 pieces, then the closing [SEP].
        return [ids if len(ids) <= self._max else [*ids[:self._max - 1], ids[-1]]
                for ids in (k or [] for k in known)]

    @staticmethod
    def _padded(ids: list[list[int]], rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The token ids of the texts `rows` as one zero-padded batch, and its mask."""
        width = max(len(ids[i]) for i in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for r, i in enumerate(rows):
            input_ids[r, :len(ids[i])] = ids[i]
            mask[r, :len(ids[i])] = 1
        return input_ids, mask

    def _run(self, session: Any, ids: list[list[int]], rows: list[int]) -> np.ndarray:
        """One padded batch of the texts `rows` through `session`."""
        input_ids, mask = self._padded(ids, rows)
        feed = {"input_ids": input_ids, "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids)}
        result: np.ndarray = session.run(None, {k: v for k, v in feed.items()
                                                if k in self._inputs})[0]
        return result

    def _run_parallel(self, sessions: list[Any], ids: list[list[int]],
                      batches: list[list[int]], out: np.ndarray) -> None:
        """`batches` on `sessions` at once, each session taking the next batch when it is
        free (ONNX Runtime releases the GIL); each batch writes only its own rows of `out`."""
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for session in sessions:
            free.put(session)

        def work(rows: list[int]) -> None:
            session = free.get()
            try:
                out[rows] = self._run(session, ids, rows)
            finally:
                free.put(session)

        with ThreadPoolExecutor(len(sessions), thread_name_prefix="rag-embed") as pool:
            list(pool.map(work, batches))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._ready()
        ids = self._token_ids(texts)
        # Batches of similar length, so no batch embeds a long text's worth of padding;
        # rows go back in the caller's order.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        bulk = len(ids) >= BULK_MIN
        bf16, measuring = bulk and self.bulk_bf16(), bulk and self.measuring()
        # While torch does the bulk work the query session is handed back (below); a small
        # call in that phase (a build's last few chunks, a search beside it) runs on torch
        # too, rather than opening the session again beside it.
        if not bulk and self._session is None and self._torch is not None:
            bf16 = True
        if measuring and self._bulk is not None:
            # The trials need the query session alone (fp32) beside torch; the bulk sessions
            # of the first BF16_AFTER_TEXTS texts go back first (fp32 winning reopens them).
            self._hand_back("_bulk")
        t0 = time.perf_counter()
        # A trial runs on one thread either way (rates per thread compare the same), and
        # no bulk session is opened beside torch unless fp32 wins: both at once added
        # ~200 MB to the peak.
        if measuring:
            threads = 1
        elif bf16:
            with self._lock:  # the free cores, counted once (as for the bulk sessions)
                self._bf16_threads = self._bf16_threads or self.threads or available_threads()
            threads = self._bf16_threads
        sessions = [] if bf16 else [self._query_session()] if measuring else \
            self._sessions_for(len(ids))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        batches = [order[b:b + BATCH] for b in range(0, len(order), BATCH)]
        if bf16:
            model = self._bf16_model()
            for rows in batches:
                out[rows] = model.embed_batch(*self._padded(ids, rows), threads)
        elif len(sessions) == 1 or len(batches) == 1:  # a query: no pool on the hot path
            for rows in batches:
                out[rows] = self._run(sessions[0], ids, rows)
        else:
            self._run_parallel(sessions, ids, batches, out)
        if bulk:
            self._bulk_seen += len(ids)
        if measuring:
            self.record_trial(bf16, time.perf_counter() - t0, list(texts))
            if not self.measuring():  # chosen: the other runtime's memory goes back
                with self._lock:
                    if self.bulk_bf16():
                        self._bulk = None
                    else:
                        self._torch = None
        elif bulk and bf16 and self._session is not None:
            # The idle query session (weights and arena, ~150 MB) goes back for the rest of
            # the bulk work: news-dev's build peaked ~1.02 GB with it, past the 1 GB target.
            self._hand_back("_session")
        return normalize(out)


def run_file(onnx_file: Path, source: Path, texts: Sequence[str]) -> np.ndarray:
    """`texts` embedded by `onnx_file`, an export of the model folder `source`, exactly as
    `OnnxEmbedder` embeds them: how `rag.embed.export` checks an export against torch."""
    return OnnxEmbedder.from_file(onnx_file, source).embed(texts)
