"""A deterministic embedder for fast tests: the boundary fake (never the code under test).

Hashed bag of stemmed words, L2-normalised: texts sharing words are similar, which is
enough to exercise indexing, fusion and persistence without loading a model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np


class FakeEmbedder:
    name = "test/fake-hash-embedder"

    def __init__(self, dim: int = 64, max_tokens: int | None = None) -> None:
        self.dim = dim
        if max_tokens is not None:
            self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text)) + 2

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w[:6].encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms
