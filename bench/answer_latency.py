"""Answer latency: `answer()` against a built index, after the model is loaded.

    python bench/answer_latency.py --index DIR [--queries FILE.jsonl] [-n 100] [--threads N]
        [--backfill] [--indexing-cost ARTICLES.jsonl]

Prints p50/p95 of the whole extractive answer and of its search step, back to back with
the sentence vectors stored in the index (`rag.index.sentences`) and with them ignored
(every candidate sentence embedded on the fly, as before they existed), plus the bytes
they take per chunk. `--backfill` first stores them in an index written before they
existed (it writes to DIR). `--indexing-cost` embeds a sample of articles' chunks and
their sentences and reports what the sentences add to indexing time.

Build the index first, e.g. `rag index ../shared/datasets/scifact/corpus.jsonl --index
/tmp/scifact`; queries default to SciFact's claims (a query line's "text" or "question").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag import Index, SentenceTransformerEmbedder, answer
from rag.eval.metrics import percentile
from rag.results import Hit

DEFAULT_QUERIES = Path(__file__).resolve().parent.parent.parent / "shared/datasets/scifact/queries.jsonl"


class _OnTheFly(Index):
    """The same index with its stored sentence vectors ignored."""

    def sentence_vectors(self, hits: Sequence[Hit], chars: int = 0
                         ) -> dict[tuple[str, int, int], np.ndarray]:
        return {}


def sentence_bytes(idx: Index) -> tuple[float, float, int]:
    """(bytes of stored sentences per chunk, sentences per chunk, chunks with a row)."""
    row = idx.store.db.execute(
        "SELECT count(*), sum(length(spans) + length(codes) + length(scales)), "
        "sum(length(spans)) / 8 FROM sentences s JOIN chunks c ON c.id=s.chunk_id "
        "WHERE c.deleted IS NULL").fetchone()  # tombstoned rows wait for the next write
    chunks = idx.stats().chunks or 1
    return (row[1] or 0) / chunks, (row[2] or 0) / chunks, int(row[0] or 0)


def indexing_cost(idx: Index, articles: Path, n: int) -> None:
    """Time to embed `n` articles' chunks, then their sentences (as indexing does)."""
    from rag.index.sentences import chunk_sentences
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
    sent_texts = [a.text[s:e][:300] for a, cs in chunked
                  for spans in chunk_sentences(a.text, cs) for s, e in spans]
    idx.embedder.embed(chunk_texts[:16])  # warm
    t = time.perf_counter()
    idx.embedder.embed(chunk_texts)
    tc = time.perf_counter() - t
    t = time.perf_counter()
    idx.embedder.embed(sent_texts)
    ts = time.perf_counter() - t
    print(f"| indexing: {len(arts)} articles, {len(chunk_texts)} chunks, {len(sent_texts)} "
          f"sentences | chunks {tc:.1f} s, sentences {ts:.1f} s: +{100 * ts / tc:.0f}% "
          "embedding time |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--threads", type=int)
    p.add_argument("--backfill", action="store_true")
    p.add_argument("--indexing-cost", type=Path)
    p.add_argument("--articles", type=int, default=40, help="articles for --indexing-cost")
    args = p.parse_args()
    if not args.queries.exists():
        print(f"skipped: {args.queries} not found")
        return 0
    embedder = SentenceTransformerEmbedder(threads=args.threads)
    if args.backfill:
        from rag.index.folder import WriteLock
        from rag.index.sentences import backfill
        from rag.index.store import Store

        with WriteLock(Path(args.index), timeout=10):
            t = time.perf_counter()
            filled = backfill(Store(Path(args.index) / "store.sqlite"), embedder.embed)
            print(f"| backfill | {filled} chunks in {time.perf_counter() - t:.1f} s |")
    idx = Index.load(args.index, embedder=embedder)
    plain = _OnTheFly.load(args.index, embedder=embedder)
    questions = []
    for line in args.queries.open():
        d = json.loads(line)
        questions.append(d.get("text") or d["question"])
    questions = questions[: args.n]
    for i in (idx, plain):
        answer("warm up the model", i)
    search: list[float] = []
    times: dict[str, list[float]] = {"stored": [], "on the fly": []}
    for q in questions:
        t = time.perf_counter()
        idx.search(q + " ", k=5)  # a different string, so the answers below miss the cache
        search.append((time.perf_counter() - t) * 1000)
        # Back to back, alternating which goes first: a busy neighbour slows both alike.
        for name, i in (("stored", idx), ("on the fly", plain)):
            i._query_cache.clear()
            t = time.perf_counter()
            answer(q, i)
            times[name].append((time.perf_counter() - t) * 1000)
    per_chunk, sents, rows = sentence_bytes(idx)
    print(f"| index chunks | {idx.stats().chunks} |\n| questions | {len(questions)} |")
    print(f"| search p50 / p95 ms | {percentile(search, 50):.1f} / {percentile(search, 95):.1f} |")
    for name, ms in times.items():
        print(f"| answer p50 / p95 ms, sentence vectors {name} | "
              f"{percentile(ms, 50):.1f} / {percentile(ms, 95):.1f} |")
    print(f"| stored sentences | {sents:.2f} per chunk, {per_chunk:.0f} bytes per chunk "
          f"({per_chunk * 1e6 / 2**30:.2f} GiB at 1M chunks); {rows} chunks have a row |")
    if args.indexing_cost:
        indexing_cost(idx, args.indexing_cost, args.articles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
