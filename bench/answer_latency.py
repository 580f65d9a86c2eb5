"""Answer latency: `answer()` and its search against a built index, after the models load.

    python bench/answer_latency.py --index DIR [--queries FILE.jsonl] [-n 100] [--threads N]
        [--indexing-cost ARTICLES.jsonl [--articles 40]]

Prints p50/p95 of the whole extractive answer (retrieve, read, answer) and of a search
alone, over the first `-n` queries. `--indexing-cost` embeds a sample of articles' chunks
and then their sentences alone, and reports what storing sentence vectors
(`rag index --sentences`, off by default) adds to indexing time.

Build the index first, e.g. `rag index ../shared/datasets/scifact/corpus.jsonl --index
/tmp/scifact`; queries default to SciFact's claims (a query line's "text" or "question").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rag import Index, SentenceTransformerEmbedder, answer
from rag.eval.metrics import percentile

DEFAULT_QUERIES = Path(__file__).resolve().parent.parent.parent / "shared/datasets/scifact/queries.jsonl"


def indexing_cost(idx: Index, articles: Path, n: int) -> None:
    """Time to embed `n` articles' chunks, then their sentences (as `--sentences` does)."""
    from rag.index.sentences import SENTENCE_CHARS, chunk_sentences
    from rag.index.writer import chunk_for, embedding_texts
    from rag.ingest.articles import Article

    arts = []
    for line in articles.open():
        d = json.loads(line)
        arts.append(Article(str(d["id"]), d.get("title") or "", d["text"], None, None, None,
                            None, None, ""))
        if len(arts) >= n:
            break
    chunked = [(a, chunk_for(idx.embedder, a, idx.chunking)) for a in arts]
    chunk_texts = [t for a, cs in chunked for t in embedding_texts(a, cs)]
    sent_texts = [a.text[s:e][:SENTENCE_CHARS] for a, cs in chunked
                  for spans in chunk_sentences(a.text, cs) for s, e in spans]
    idx.embedder.embed(chunk_texts[:16])  # warm
    t = time.perf_counter()
    idx.embedder.embed(chunk_texts)
    tc = time.perf_counter() - t
    t = time.perf_counter()
    idx.embedder.embed(sent_texts)
    ts = time.perf_counter() - t
    print(f"| indexing: {len(arts)} articles, {len(chunk_texts)} chunks, {len(sent_texts)} "
          f"sentences | chunks {tc:.1f} s, sentences {ts:.1f} s: --sentences adds "
          f"{100 * ts / tc:.0f}% embedding time |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--threads", type=int)
    p.add_argument("--indexing-cost", type=Path)
    p.add_argument("--articles", type=int, default=40, help="articles for --indexing-cost")
    args = p.parse_args()
    if not args.queries.exists():
        print(f"skipped: {args.queries} not found")
        return 0
    idx = Index.load(args.index, embedder=SentenceTransformerEmbedder(threads=args.threads))
    questions = []
    for line in args.queries.open():
        d = json.loads(line)
        questions.append(d.get("text") or d["question"])
    questions = questions[: args.n]
    answer("warm up the models", idx)
    search: list[float] = []
    answers: list[float] = []
    for q in questions:
        t = time.perf_counter()
        idx.search(q + " ", k=5)  # a different string, so the answer below misses the cache
        search.append((time.perf_counter() - t) * 1000)
        idx._query_cache.clear()
        t = time.perf_counter()
        answer(q, idx)
        answers.append((time.perf_counter() - t) * 1000)
    print(f"| index chunks | {idx.stats().chunks} |\n| questions | {len(questions)} |")
    for name, ms in (("search", search), ("answer", answers)):
        print(f"| {name} p50 / p95 ms | {percentile(ms, 50):.1f} / {percentile(ms, 95):.1f} |")
    if args.indexing_cost:
        indexing_cost(idx, args.indexing_cost, args.articles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
