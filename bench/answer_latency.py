"""Answer latency: `answer()` against a built index, after the model is loaded.

    python bench/answer_latency.py --index DIR [--queries FILE.jsonl] [-n 100] [--threads N]

Prints p50/p95 of the whole extractive answer and of its search step. Build the index
first, e.g. `rag index ../shared/datasets/scifact/corpus.jsonl --index /tmp/scifact`
(10k chunks); queries default to SciFact's claims.
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if not args.queries.exists():
        print(f"skipped: {args.queries} not found")
        return 0
    idx = Index.load(args.index)
    idx.embedder = SentenceTransformerEmbedder(idx.model, threads=args.threads)
    questions = [json.loads(line)["text"] for line in args.queries.open()][: args.n]
    answer("warm up the model", idx)
    total, search = [], []
    for q in questions:
        t = time.perf_counter()
        idx.search(q + " ", k=5)  # a different string, so the answer below misses the cache
        search.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        answer(q, idx)
        total.append((time.perf_counter() - t) * 1000)
    chunks = idx.stats().chunks
    print(f"| index chunks | {chunks} |\n| questions | {len(total)} |")
    print(f"| search p50 / p95 ms | {percentile(search, 50):.1f} / {percentile(search, 95):.1f} |")
    print(f"| answer p50 / p95 ms | {percentile(total, 50):.1f} / {percentile(total, 95):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
