"""Does int8 keep retrieval? Dense nDCG@10 on SciFact, fp32 ONNX against int8 ONNX.

    python bench/quantized.py [--data ../shared/datasets/scifact] [--docs N]

Embeds the abstracts (title + text, as the model reads them: cut at 256 word pieces)
with both models and ranks them for the 300 claims by cosine alone: the strictest view
of what quantization changes (the product's hybrid search dilutes it with BM25). With
`--docs N`, every judged abstract is kept plus the first others up to N (a fixed slice,
for a busy machine; the published figures are on the whole corpus). Also prints each
model's rate on the same texts, and the least/mean cosine between the two models' vectors.
The keep-rule (issue 13): int8 only if nDCG@10 moves by less than 0.005.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from rag.embed.onnx import INT8, OnnxEmbedder
from rag.eval.benchmarks import load_qrels
from rag.eval.metrics import ndcg_at_k

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared/datasets/scifact"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT)
    p.add_argument("--docs", type=int, help="a fixed slice: judged abstracts + first others")
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if not (args.data / "corpus.jsonl").exists():
        print(f"skipped: {args.data} not found")
        return 0
    qrels = load_qrels(args.data / "qrels" / "test.tsv")
    judged = {d for rel in qrels.values() for d in rel}
    docs = [json.loads(line) for line in (args.data / "corpus.jsonl").open()]
    if args.docs:
        others = [d for d in docs if d["_id"] not in judged][: max(0, args.docs - len(judged))]
        docs = [d for d in docs if d["_id"] in judged] + others
    queries = [json.loads(line) for line in (args.data / "queries.jsonl").open()]
    queries = [q for q in queries if q["_id"] in qrels]
    ids = [d["_id"] for d in docs]
    texts = [f"{d.get('title', '')}\n{d['text']}" for d in docs]
    print(f"{len(docs)} abstracts, {len(queries)} claims; load average {os.getloadavg()[0]:.1f}")
    print("| model | dense nDCG@10 | texts/s | texts per CPU-second |\n| --- | --- | --- | --- |")
    vectors, query_vectors = {}, {}

    def ndcg(qv: np.ndarray, dv: np.ndarray) -> float:
        ranked = np.argsort(-(qv @ dv.T), axis=1)[:, :10]
        return float(np.mean([ndcg_at_k([ids[j] for j in row], qrels[q["_id"]], 10)
                              for q, row in zip(queries, ranked)]))

    for name in (MODEL, MODEL + INT8):
        emb = OnnxEmbedder(name, threads=args.threads)
        emb.embed(["warm up"] * 40)
        c, t = time.process_time(), time.perf_counter()
        dv = np.concatenate([emb.embed(texts[i:i + 64]) for i in range(0, len(texts), 64)])
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        qv = emb.embed([q["text"] for q in queries])
        vectors[name], query_vectors[name] = dv, qv
        print(f"| {name} | {ndcg(qv, dv):.4f} | {len(texts) / wall:.1f} | {len(texts) / cpu:.1f} |",
              flush=True)
    # The bulk work in int8, the one query per question in fp32 (cheap either way).
    print(f"| int8 abstracts, fp32 claims | {ndcg(query_vectors[MODEL], vectors[MODEL + INT8]):.4f} "
          "| | |")
    cos = np.sum(vectors[MODEL] * vectors[MODEL + INT8], axis=1)
    print(f"cosine fp32 vs int8: least {cos.min():.4f}, mean {cos.mean():.4f}; "
          f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
