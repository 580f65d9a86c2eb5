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
    "Index": "index.facade",
    "IndexReport": "index.facade",
    "IndexStats": "index.facade",
    "Hit": "results",
    "Answer": "results",
    "Citation": "results",
    "Article": "ingest.articles",
    "Filters": "options",
    "Skipped": "ingest.articles",
    "ChunkSpec": "ingest.chunking",
    "Embedder": "embed.embedder",
    "SentenceTransformerEmbedder": "embed.embedder",
    "OpenAICompatible": "answering.llm",
    "Reader": "answering.reader",
    "Reading": "answering.reader",
    "Span": "answering.reader",
    "answer": "answering.answer",
    "answer_stream": "answering.answer",
    "RagError": "errors",
}

__all__ = [
    "Answer", "Article", "ChunkSpec", "Citation", "Embedder", "Filters", "Hit", "Index", "IndexReport",
    "IndexStats", "OpenAICompatible", "RagError", "Reader", "Reading", "SentenceTransformerEmbedder",
    "Skipped", "Span", "answer", "answer_stream",
]

if TYPE_CHECKING:
    from rag.answering.answer import answer, answer_stream
    from rag.answering.llm import OpenAICompatible
    from rag.answering.reader import Reader, Reading, Span
    from rag.embed.embedder import Embedder, SentenceTransformerEmbedder
    from rag.errors import RagError
    from rag.index.facade import Index, IndexReport, IndexStats
    from rag.ingest.articles import Article, Skipped
    from rag.ingest.chunking import ChunkSpec
    from rag.options import Filters
    from rag.results import Answer, Citation, Hit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rag.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
