"""Scale-out benchmark: indexing on Ray against the local path, and sharded search.

    python bench/scale_out.py                          # 100 news-dev articles, 100k chunks
    python bench/scale_out.py --articles 300 --chunks 1000000 --shards 4

1. Indexing throughput (chunks embedded per second, end to end: read, chunk, embed, write)
   on a fixed slice of news-dev (the first `--articles` articles), with the product's
   default embedder: the local path, then `--ray local` with 1 and with 2 embedder actors.
   Ray's start-up is timed apart; each run writes a fresh index.
2. Sharded search: `--chunks` synthetic chunks (bench/scale.py's clustered vectors and
   topic texts) searched through `Index.search` as one index and as `--shards` shards of
   the same kind: p50/p95 latency, recall@10 of the dense side against exact search, and
   the fan-out cost (sharded minus single, per query).

Prints Markdown tables. Needs the scale extra (`pip install ".[scale]"`) and ../shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import Corpus as SyntheticCorpus  # noqa: E402
from scale import QueryTable, exact_top, fill_store, make_queries, recall  # noqa: E402

from rag.eval.metrics import percentile  # noqa: E402
from rag.index.facade import Index  # noqa: E402

NEWS = ROOT.parent / "shared" / "datasets" / "news-dev" / "articles.jsonl"


def load() -> str:
    return os.popen("uptime").read().strip()


# -- 1. indexing -----------------------------------------------------------------------------
def indexing(articles: int, work: Path) -> list[dict[str, Any]]:
    from rag.embed.embedder import embedder_for
    from rag.scale.ray_ingest import RayPipeline, connect

    docs = work / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    with NEWS.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(articles)]
    (docs / "slice.jsonl").write_text("".join(lines), encoding="utf-8")
    rows = []

    def run(name: str, pipeline: Any) -> None:
        path = work / f"index-{name}"
        shutil.rmtree(path, ignore_errors=True)
        embedder = embedder_for()
        idx = Index.open(path, embedder=embedder)
        t0 = time.perf_counter()
        report = idx.add([docs], pipeline=pipeline, progress=False)
        seconds = time.perf_counter() - t0
        idx.close()
        rows.append({"path": name, "backend": type(embedder).__name__,
                     "chunks": report.chunks_added, "seconds": seconds,
                     "chunks_per_s": report.chunks_added / seconds, "load": load()})
        print(f"  {name}: {rows[-1]['chunks_per_s']:.1f} chunks/s", file=sys.stderr)

    run("local", None)
    t0 = time.perf_counter()
    ray = connect("local")
    started = time.perf_counter() - t0
    for actors in (1, 2):
        run(f"ray, {actors} actor{'s' if actors > 1 else ''}", RayPipeline(actors=actors))
    ray.shutdown()
    rows.append({"path": "ray start-up (local)", "seconds": started})
    return rows


# -- 2. sharded search -----------------------------------------------------------------------
def sharded(n: int, shards: int, kinds: list[str], n_queries: int,
            work: Path) -> list[dict[str, Any]]:
    from rag.index.derived import reshard

    index = work / f"synthetic-{n}"
    shutil.rmtree(index, ignore_errors=True)
    corpus = SyntheticCorpus(n)
    vectors, _ = fill_store(index, corpus)
    texts, qvecs = make_queries(corpus, n_queries)
    exact = exact_top(vectors, qvecs, 10)
    table = QueryTable(dict(zip(texts, qvecs)))
    rows = []
    for kind in kinds:
        for parts in (1, shards):
            t0 = time.perf_counter()
            idx = Index.open(index, embedder=table)
            reshard(idx, parts, kind=kind)
            built = time.perf_counter() - t0
            idx = Index.load(index, embedder=table)
            idx.search(texts[0], k=10)  # loaded
            state = idx._current()
            dense, lat = [], []
            for t, q in zip(texts, qvecs):
                t1 = time.perf_counter()
                idx.search(t, k=10)
                lat.append((time.perf_counter() - t1) * 1000)
                dense.append(state.vectors.search(q, 10)[1])
            d_lat = []
            for q in qvecs:
                t1 = time.perf_counter()
                state.vectors.search(q, 10)
                d_lat.append((time.perf_counter() - t1) * 1000)
            rows.append({"chunks": n, "kind": kind, "shards": parts, "build_s": built,
                         "p50": percentile(lat, 50), "p95": percentile(lat, 95),
                         "dense_p50": percentile(d_lat, 50),
                         "recall10": recall(dense, exact, 10), "load": load()})
            print(f"  {kind} x{parts}: p50 {rows[-1]['p50']:.1f} ms", file=sys.stderr)
            idx.close()
    return rows


def report(ix: list[dict[str, Any]], sh: list[dict[str, Any]]) -> None:
    if ix:
        print("\n| indexing path | embedder | chunks | seconds | chunks/s | vs local |")
        print("|---|---|---:|---:|---:|---:|")
        base = next(r["chunks_per_s"] for r in ix if r["path"] == "local")
        for r in ix:
            if "chunks" in r:
                print(f"| {r['path']} | {r['backend']} | {r['chunks']} | {r['seconds']:.1f} | "
                      f"{r['chunks_per_s']:.1f} | {r['chunks_per_s'] / base:.2f}x |")
            else:
                print(f"| {r['path']} | | | {r['seconds']:.1f} | | |")
        print(f"\nload during indexing: {ix[0]['load']}")
    if sh:
        print("\n| chunks | kind | shards | search p50 ms | p95 ms | dense-only p50 ms | "
              "recall@10 vs exact | derive s |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in sh:
            print(f"| {r['chunks']:,} | {r['kind']} | {r['shards']} | {r['p50']:.1f} | "
                  f"{r['p95']:.1f} | {r['dense_p50']:.2f} | {r['recall10']:.3f} | "
                  f"{r['build_s']:.0f} |")
        for kind in dict.fromkeys(r["kind"] for r in sh):
            one, many = [r for r in sh if r["kind"] == kind][:2]
            print(f"\nfan-out cost ({kind}, {many['shards']} shards): "
                  f"{many['p50'] - one['p50']:+.1f} ms p50 per query "
                  f"({many['p50'] / one['p50']:.2f}x)")
        print(f"\nload during search: {sh[-1]['load']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--articles", type=int, default=100, help="news-dev articles to index")
    p.add_argument("--chunks", type=int, default=100_000, help="synthetic chunks to shard")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--kinds", nargs="+", default=["ivf", "flat"])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--skip-indexing", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        work = Path(tmp)
        ix = [] if args.skip_indexing else indexing(args.articles, work)
        sh = [] if args.skip_search else sharded(args.chunks, args.shards, args.kinds,
                                                 args.queries, work)
    report(ix, sh)
    if args.json:
        args.json.write_text(json.dumps({"indexing": ix, "search": sh}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
