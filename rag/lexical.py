"""BM25 over chunk text (title included), with bm25s; rebuilt from the store on change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Single characters count: "2 intercepted" must match the digit.
_TOKEN_PATTERN = r"(?u)\b\w+\b"


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lowercased, stop-worded, Porter2-stemmed tokens: the same for chunks and queries."""
    import bm25s

    out = bm25s.tokenize(
        list(texts), token_pattern=_TOKEN_PATTERN, stopwords="en", stemmer=_stemmer(),
        return_ids=False, show_progress=False,
    )
    return [list(t) for t in out]


class Lexical:
    """A BM25 index whose rows map to chunk ids."""

    def __init__(self, retriever: Any, ids: np.ndarray) -> None:
        self.retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, ids: np.ndarray, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> Lexical:
        import bm25s

        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        if len(texts):
            retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, np.asarray(ids, dtype=np.int64))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self.ids)
        if len(self.ids):
            self.retriever.save(str(folder), show_progress=False)
        (folder / "ok.json").write_text(json.dumps({"n": len(self.ids)}))

    @classmethod
    def load(cls, folder: Path) -> Lexical:
        import bm25s

        ids = np.load(folder / "ids.npy")
        if not len(ids):
            return cls(bm25s.BM25(), ids)
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        return cls(retriever, ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for `query` (zeros where no term matched)."""
        if not len(self.ids):
            return np.zeros(0, dtype=np.float32)
        tokens = tokenize([query])[0]
        vocab = self.retriever.vocab_dict
        tokens = [t for t in tokens if t in vocab]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
