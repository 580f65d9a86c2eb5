"""The ONNX embedder's bulk work on torch with bf16 autocast, where that measures faster.

On a CPU with AMX or AVX-512-BF16, torch's bf16 matrix kernels beat ONNX Runtime's fp32
ones by more than any other lever tried for indexing (issue 25): on the project's machine
(2026-12-07, 300 SciFact abstracts, one thread) 4.8 CPU-s in bf16 against 14.6 on torch
fp32 and ~12.7 on ONNX Runtime fp32, with vectors at cosine 0.99998 (least 0.99997) from
fp32, where int8 weights (per-channel) gave 0.995 and lost 0.006 of SciFact's dense
nDCG@10. Same model, same weights, the same token ids: an index may hold vectors of
either, and queries stay on ONNX Runtime (no torch import on the query path). Whether it
is used is measured per process (`rag.embed.runtime.Bf16Choice`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

# Batches are padded to a multiple of this many tokens, and to full rows: torch builds
# (and keeps) kernels per input shape, and a shape per exact length held 1.09 GB after 73
# widths where steps of 16 held 0.63 GB, at less CPU (10.1 s against 12.7: fewer kernels
# built) for ~5 % more tokens.
WIDTH_STEP = 16


class TorchBf16:
    """The model at `source` on torch (transformers' own model class, pooled as its
    sentence-transformers config says: importing sentence-transformers alone costs 240 MB),
    loaded once. Batches run one at a time on torch's own threads: one calling thread
    rather than the ONNX sessions' one batch per core, because torch's buffers then come
    from one allocator arena (300 news articles: 913 MB peak against 969, and 59.6 s
    against 62.5)."""

    def __init__(self, source: Path, rows: int) -> None:
        self.source = source
        self.rows = rows
        self._model: Any = None
        self._cls = False
        self._lock = threading.Lock()

    def _load(self) -> Any:
        import torch
        import transformers
        from transformers import AutoModel

        transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        # Parallelism comes from the pool's threads, one batch each, as with the ONNX
        # sessions: torch's own threads on batches of 8 would fight them for the cores.
        pooling = json.loads((self.source / "1_Pooling" / "config.json").read_text())
        self._cls = bool(pooling.get("pooling_mode_cls_token"))
        model = AutoModel.from_pretrained(str(self.source)).eval()
        # Autocast casts every Linear's fp32 weights to bf16 on each call anyway: held in
        # bf16 once, the vectors are the same and the fp32 copies (~42 MB) and the per-call
        # casts (~21 MB) are gone. LayerNorm, softmax and the embeddings stay fp32.
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
        return model

    def embed_batch(self, input_ids: np.ndarray, mask: np.ndarray, threads: int) -> np.ndarray:
        """Sentence vectors (not yet normalised) of one padded batch of token ids, on
        `threads` of torch's threads."""
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        n, width = input_ids.shape
        rows, cols = max(n, self.rows), -(-width // WIDTH_STEP) * WIDTH_STEP
        ids = torch.zeros((rows, cols), dtype=torch.int64)
        keep = torch.zeros((rows, cols), dtype=torch.int64)
        ids[:n, :width] = torch.from_numpy(input_ids)
        keep[:n, :width] = torch.from_numpy(mask)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = self._model(input_ids=ids, attention_mask=keep,
                                 token_type_ids=torch.zeros_like(ids)).last_hidden_state
        hidden = hidden[:n].float()
        if self._cls:
            pooled = hidden[:, 0]
        else:
            weights = keep[:n].unsqueeze(-1).float()
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        result: np.ndarray = pooled.numpy()
        return result


def torch_available() -> bool:
    """Whether torch and transformers are installed (checked without importing)."""
    from importlib.util import find_spec

    return find_spec("torch") is not None and find_spec("transformers") is not None
