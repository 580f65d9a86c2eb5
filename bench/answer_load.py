"""Answer latency idle and beside one CPU-bound process (`yes > /dev/null`).

    python bench/answer_load.py --index DIR [--questions FILE.jsonl] [-n 30] [--configs onnx,torch2]

For each embedder configuration, `answer()` runs over the same questions twice: as the
machine is, then with one `yes` process running beside it. Prints p50/p95 of each and
the ratio of the p95s (target: within 3x). Configurations: `onnx` (the default: ONNX
Runtime, one thread for queries, no spinning), `onnx2` (ONNX Runtime on two threads),
`torch2` (torch on two threads: the path before ONNX). Questions are the `question` or
`text` field of a JSONL (default: SciFact's claims).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rag import Index, answer
from rag.eval.metrics import percentile

DEFAULT_QUESTIONS = (Path(__file__).resolve().parent.parent.parent
                     / "shared/datasets/scifact/queries.jsonl")


def embedder(config: str, model: str) -> Any:
    from rag.embed.embedder import SentenceTransformerEmbedder
    from rag.embed.onnx import OnnxEmbedder

    if config == "onnx":
        return OnnxEmbedder(model)
    if config == "onnx2":
        return OnnxEmbedder(model, threads=2)
    if config == "torch2":
        return SentenceTransformerEmbedder(model, threads=2, bf16=False)
    raise SystemExit(f"unknown configuration {config!r}")


def latencies(idx: Index, questions: list[str]) -> list[float]:
    out = []
    for q in questions:
        t = time.perf_counter()
        answer(q, idx)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--configs", default="onnx,torch2")
    args = p.parse_args()
    if not args.questions.exists():
        print(f"skipped: {args.questions} not found")
        return 0
    rows = [json.loads(line) for line in args.questions.open()]
    questions = [str(r.get("question") or r.get("text")) for r in rows][: args.n]
    idx = Index.load(args.index)
    print(f"index {args.index} ({idx.stats().chunks} chunks), {len(questions)} questions; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| embedder | idle p50 / p95 ms | one `yes` beside p50 / p95 ms | p95 ratio |")
    print("| --- | --- | --- | --- |")
    for config in args.configs.split(","):
        idx.embedder = embedder(config, idx.model)
        idx._query_cache.clear()  # every run embeds its questions afresh
        answer("warm up the model", idx)
        idle = latencies(idx, questions)
        idx._query_cache.clear()
        busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # let it take its core
            loaded = latencies(idx, questions)
        finally:
            busy.kill()
            busy.wait()
        ratio = percentile(loaded, 95) / percentile(idle, 95)
        print(f"| {config} | {percentile(idle, 50):.0f} / {percentile(idle, 95):.0f} | "
              f"{percentile(loaded, 50):.0f} / {percentile(loaded, 95):.0f} | {ratio:.1f}x |",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
