"""Question answering over a folder of articles, with every cited sentence checked.

    from rag import Index, answer
    idx = Index.build(["seeds/"], path="index/")
    print(answer("How many missiles were intercepted?", idx).text)

Names are loaded on first use, so `import rag` stays fast (no torch, no FAISS).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Index": "index",
    "IndexReport": "index",
    "IndexStats": "index",
    "Hit": "hits",
    "Answer": "answer_types",
    "Citation": "answer_types",
    "Article": "articles",
    "Skipped": "articles",
    "ChunkSpec": "chunking",
    "Embedder": "embedding",
    "SentenceTransformerEmbedder": "embedding",
    "OpenAICompatible": "llm",
    "answer": "answering",
    "answer_stream": "answering",
    "RagError": "errors",
}

__all__ = [
    "Answer", "Article", "ChunkSpec", "Citation", "Embedder", "Hit", "Index", "IndexReport",
    "IndexStats", "OpenAICompatible", "RagError", "SentenceTransformerEmbedder", "Skipped",
    "answer", "answer_stream",
]

if TYPE_CHECKING:
    from .answer_types import Answer, Citation
    from .answering import answer, answer_stream
    from .articles import Article, Skipped
    from .chunking import ChunkSpec
    from .embedding import Embedder, SentenceTransformerEmbedder
    from .errors import RagError
    from .hits import Hit
    from .index import Index, IndexReport, IndexStats
    from .llm import OpenAICompatible


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
