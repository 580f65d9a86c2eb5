"""Ingestion benchmark: index the SciFact corpus and print throughput, memory and latency.

    python bench/ingest.py [--corpus ../shared/datasets/scifact/corpus.jsonl] [--threads N]

Prints articles, chunks, wall seconds, chunks/s end to end, the embedder's raw chunks/s on
the same chunk texts (the ceiling), peak RSS, and search latency p50/p95 over the queries.
Skips with a message when the corpus is absent (it is not shipped with the product).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from rag import Index, SentenceTransformerEmbedder
from rag.eval.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT)
    p.add_argument("--threads", type=int)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--raw-sample", type=int, default=1000, help="chunks re-embedded for the raw rate")
    args = p.parse_args()
    if not args.corpus.exists():
        print(f"skipped: {args.corpus} not found (the benchmark data lives in ../shared/)")
        return 0
    embedder = SentenceTransformerEmbedder(threads=args.threads, bf16=False if args.no_bf16 else None)
    embedder.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        idx = Index.build([args.corpus], path=Path(tmp) / "index", embedder=embedder, progress=True)
        wall = time.perf_counter() - t0
        rep = idx.last_report
        texts = [t for _, ts in idx.store.iter_live_texts() for t in ts][: args.raw_sample]
        t1 = time.perf_counter()
        embedder.embed(texts)
        raw = len(texts) / (time.perf_counter() - t1)
        queries_file = args.corpus.parent / "queries.jsonl"
        queries = [json.loads(line)["text"] for line in queries_file.open()] if queries_file.exists() else []
        lat = []
        for q in queries:
            t = time.perf_counter()
            idx.search(q, k=10)
            lat.append((time.perf_counter() - t) * 1000)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("articles", f"{rep.articles}"), ("chunks", f"{rep.chunks}"),
        ("wall seconds", f"{wall:.1f}"), ("chunks/s end to end", f"{rep.chunks / wall:.1f}"),
        ("embedder raw chunks/s (same chunks)", f"{raw:.1f}"),
        ("bulk embedding in", "bf16" if embedder.bulk_bf16() else "fp32"),
        ("ms per 1,000 characters in the trials (bf16 / fp32)", _trials(embedder)),
        ("peak RSS MB", f"{rss:.0f}"),
    ]
    if lat:
        rows += [("search p50 ms", f"{percentile(lat, 50):.1f}"),
                 ("search p95 ms", f"{percentile(lat, 95):.1f}"), ("queries", str(len(lat)))]
    print("| figure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


def _trials(embedder: SentenceTransformerEmbedder) -> str:
    return " / ".join("-" if v is None else f"{v:.1f}" for v in embedder.trial_best().values())


if __name__ == "__main__":
    sys.exit(main())
