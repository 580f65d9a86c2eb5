"""Scale benchmark: search, memory, startup and updates at 100k and 1M chunks.

    python bench/scale.py                              # 100k chunks
    python bench/scale.py --sizes 100000 1000000       # and 1M (~30 min, ~10 GB free disk)

Vectors are synthetic but clustered like real embeddings: 2,000 topic centres on the unit
sphere (dim 384) with Zipf-like topic sizes, points = centre + noise (cosine ~0.7 to their
centre), normalised. Each chunk has ~700 characters of text drawn from its topic's words, so
the store and BM25 are real size. Chunks are written straight into the store (no model: the
embedder is a lookup table returning each query's vector), then the index builds its FAISS
and BM25 files the way it does after any write. Everything measured after that goes through
the product's own code: `Index.load`, `Index.search`, `Index.add`.

Prints a Markdown table per figure group. Nothing here is a test; see tests/ for those.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.eval.metrics import percentile  # noqa: E402
from rag.index.facade import Index  # noqa: E402
from rag.index.store import Store  # noqa: E402
from rag.index.vectors import Vectors  # noqa: E402
from rag.ingest.articles import Article  # noqa: E402
from rag.ingest.chunking import Chunk  # noqa: E402

DIM = 384
TOPICS = 2000
CHUNKS_PER_ARTICLE = 10
MODEL = "bench/synthetic-clusters"

_COMMON = [
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "was", "with", "said",
    "by", "as", "at", "from", "it", "be", "has", "have", "are", "were", "an", "its",
    "which", "after", "their", "but", "not", "this", "been", "more", "also", "who", "will",
    "new", "year", "two", "over", "they", "last", "first", "had", "about", "than", "other",
    "into", "when", "could", "would",
]


# -- data ------------------------------------------------------------------------------------
class Corpus:
    """Deterministic synthetic chunks: vectors, topics, texts."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.n = n
        rng = np.random.default_rng(seed)
        c = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        weights = 1.0 / np.arange(1, TOPICS + 1) ** 0.8  # a few big topics, a long tail
        self.weights = weights / weights.sum()
        self.spread = rng.uniform(0.04, 0.06, TOPICS).astype(np.float32)  # per-topic noise
        self.topic_words = [
            [f"{_syllables(rng)}" for _ in range(40)] for _ in range(TOPICS)]
        self.rng = rng

    def topics(self, n: int) -> np.ndarray:
        return self.rng.choice(TOPICS, size=n, p=self.weights)

    def vectors(self, topics: np.ndarray, extra_noise: float = 0.0) -> np.ndarray:
        noise = self.rng.standard_normal((len(topics), DIM)).astype(np.float32)
        noise *= (self.spread[topics] + extra_noise)[:, None]
        v = self.centres[topics] + noise
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def text(self, topic: int, rng: np.random.Generator, chars: int = 700) -> str:
        words = self.topic_words[topic]
        picks = rng.integers(0, len(words) + len(_COMMON), 130)
        out = " ".join(words[i] if i < len(words) else _COMMON[i - len(words)] for i in picks)
        return out[:chars].rsplit(" ", 1)[0] + "."


def _syllables(rng: np.random.Generator) -> str:
    cons, vow = "bcdfghklmnprstvz", "aeiou"
    return "".join(cons[rng.integers(16)] + vow[rng.integers(5)]
                   for _ in range(int(rng.integers(2, 5))))


class QueryTable:
    """The embedder for the benchmark: known query texts map to their vectors; any other
    text (the article added in the update test) gets a deterministic random unit vector."""

    name = MODEL
    dim = DIM

    def __init__(self, table: dict[str, np.ndarray] | None = None) -> None:
        self.table = table or {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            v = self.table.get(t)
            if v is None:
                seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
                v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
                v /= np.linalg.norm(v)
            out[i] = v
        return out


def fill_store(index: Path, corpus: Corpus, batch_articles: int = 2000) -> tuple[np.ndarray, float]:
    """Write `corpus.n` chunks as articles of 10 chunks into a new index's store.
    Returns (vectors in chunk-id order, seconds)."""
    Index.open(index, embedder=QueryTable()).close()  # creates the store and its metadata
    store = Store(index / "store.sqlite")
    rng = np.random.default_rng(11)
    n_articles = corpus.n // CHUNKS_PER_ARTICLE
    all_vecs = np.zeros((corpus.n, DIM), np.float32)
    ids_seen = 0
    t0 = time.perf_counter()
    for a0 in range(0, n_articles, batch_articles):
        arts = range(a0, min(a0 + batch_articles, n_articles))
        topics = corpus.topics(len(arts))
        # Chunks of an article share its topic, as paragraphs of one story do.
        chunk_topics = np.repeat(topics, CHUNKS_PER_ARTICLE)
        vecs = corpus.vectors(chunk_topics)
        upserts = []
        for j, (aid, topic) in enumerate(zip(arts, topics)):
            texts = [corpus.text(int(topic), rng) for _ in range(CHUNKS_PER_ARTICLE)]
            body = "\n\n".join(texts)
            chunks, pos = [], 0
            for o, t in enumerate(texts):
                chunks.append(Chunk(f"a{aid}", o, pos, pos + len(t), t))
                pos += len(t) + 2
            art = Article(id=f"a{aid}", title=f"Story {aid}", text=body,
                          published=f"20{10 + aid % 15:02d}-0{1 + aid % 9}-1{aid % 10}",
                          source="synthetic", path=None,
                          content_hash=hashlib.sha256(body.encode()).hexdigest())
            upserts.append((art, chunks, vecs[j * CHUNKS_PER_ARTICLE:(j + 1) * CHUNKS_PER_ARTICLE]))
        _, added, _ = store.apply(upserts, [])
        assert added[0] == ids_seen + 1 and added[-1] == ids_seen + len(added)  # id = row + 1
        all_vecs[ids_seen:ids_seen + len(added)] = vecs
        ids_seen += len(added)
        print(f"  store: {ids_seen:,} chunks, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    store.close()
    return all_vecs[:ids_seen], time.perf_counter() - t0


def make_queries(corpus: Corpus, n: int) -> tuple[list[str], np.ndarray]:
    """Held-out points (never inserted), perturbed a little more; texts share topic words."""
    rng = np.random.default_rng(99)
    topics = corpus.topics(n)
    vecs = corpus.vectors(topics, extra_noise=0.02)
    texts = [f"q{i} " + " ".join(rng.choice(corpus.topic_words[int(t)], 4)) for i, t in
             enumerate(topics)]
    return texts, vecs


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force inner-product top-k chunk ids (id = row + 1), in blocks."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for b in range(0, len(vectors), 200_000):
        s = queries @ vectors[b:b + 200_000].T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        cs = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        ci = np.concatenate([best_i, part + b + 1], axis=1)
        keep = np.argsort(-cs, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cs, keep, 1), np.take_along_axis(ci, keep, 1)
    return best_i


def recall(approx: list[np.ndarray], exact: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a[:k].tolist()) & set(e[:k].tolist())) / k
                          for a, e in zip(approx, exact)]))


def disk(index: Path) -> dict[str, int]:
    out = {"store": 0, "faiss": 0, "bm25": 0, "total": 0}
    for f in index.rglob("*"):
        if not f.is_file():
            continue
        size = f.stat().st_size
        out["total"] += size
        name = f.relative_to(index).parts[0]
        key = ("store" if name.startswith("store.sqlite") else "faiss" if name.startswith(
            "vectors-") else "bm25" if name.startswith("bm25-") else None)
        if key:
            out[key] += size
    return out


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak (VmHWM, reset by exec, unlike
    ru_maxrss which a child inherits from its parent), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the fresh process that loads and searches -------------------------------------------------
def child(index: Path, queries_file: Path, out_file: Path) -> None:
    data = np.load(queries_file)
    texts = json.loads(queries_file.with_suffix(".json").read_text())
    table = dict(zip(texts, data))
    base = rss_mb()
    t0 = time.perf_counter()
    idx = Index.load(index, embedder=QueryTable(table))
    first = idx.search(texts[0], k=10)
    startup = time.perf_counter() - t0
    after_load = rss_mb()
    assert len(first) == 10
    out: dict[str, Any] = {"baseline_rss": base, "startup_s": startup, "rss_after_load": after_load}
    for mode in ("hybrid", "dense"):
        lat = []
        for t in texts:
            t1 = time.perf_counter()
            hits = idx.search(t, k=10, mode=mode)
            lat.append((time.perf_counter() - t1) * 1000)
            assert hits
        out[mode] = {"p50": percentile(lat, 50), "p95": percentile(lat, 95)}
    out["rss_after_searches"] = rss_mb()
    out["peak_rss"] = rss_mb("VmHWM")
    out_file.write_text(json.dumps(out))


def derive(index: Path, out_file: Path) -> None:
    """Build the FAISS and BM25 files from the store, as the first load after a write
    that never wrote them does (in a fresh process, to measure its own peak memory)."""
    import rag.index.facade as ri

    timers = _timers(ri)
    t0 = time.perf_counter()
    idx = Index.open(index, embedder=QueryTable())
    kind = idx.stats().kind  # loads the state: none on disk yet, so it is built and persisted
    idx.close()
    out_file.write_text(json.dumps({"seconds": time.perf_counter() - t0, "kind": kind,
                                    "peak_rss": rss_mb("VmHWM"), **timers}))


def fresh_update(index: Path, article_dir: Path, out_file: Path) -> None:
    """What `rag index NEW_ARTICLE` does: open (no state loaded) and add one article."""
    import rag.index.facade as ri

    timers = _timers(ri)
    t0 = time.perf_counter()
    idx = Index.open(index, embedder=QueryTable())
    rep = idx.add([article_dir], progress=False)
    wall = time.perf_counter() - t0
    out_file.write_text(json.dumps({"seconds": wall, "added": rep.added,
                                    "peak_rss": rss_mb("VmHWM"), **timers}))


_TIMERS: dict[str, float] = {}


def _timers(ri: Any) -> dict[str, float]:
    """Wrap the derived-index builders to attribute update time (bench-only; no product
    change). Wraps once per process; callers reset the returned counters."""
    timers = _TIMERS
    if timers:
        return timers
    timers.update({"bm25_build": 0.0, "bm25_update": 0.0, "faiss_build": 0.0, "persist": 0.0})

    def wrap(owner: Any, attr: str, key: str, static: bool) -> None:
        fn = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers[key] += time.perf_counter() - t

        setattr(owner, attr, classmethod(lambda cls, *a, **kw: timed(*a, **kw)) if static else timed)

    wrap(ri.Lexical, "build", "bm25_build", True)
    wrap(ri.Lexical, "updated", "bm25_update", False)
    wrap(ri.Vectors, "build", "faiss_build", True)
    wrap(ri.Index, "_persist", "persist", False)
    return timers


# -- one size --------------------------------------------------------------------------------
def run_size(n: int, work: Path, n_queries: int) -> dict[str, Any]:
    print(f"== {n:,} chunks", file=sys.stderr)
    index = work / f"index-{n}"
    shutil.rmtree(index, ignore_errors=True)
    corpus = Corpus(n)
    vectors, t_store = fill_store(index, corpus)
    texts, qvecs = make_queries(corpus, n_queries)
    qfile = work / f"queries-{n}.npy"
    np.save(qfile, qvecs)
    qfile.with_suffix(".json").write_text(json.dumps(texts))

    # The derived files, built from the stored vectors and texts in a fresh process.
    del corpus.rng  # (the generator's state is not needed past this point)
    out = work / f"derive-{n}.json"
    subprocess.run([sys.executable, __file__, "--derive", str(index), str(out)], check=True)
    derived = json.loads(out.read_text())
    print(f"  derived files: {derived['seconds']:.0f} s ({derived['kind']})", file=sys.stderr)
    sizes = disk(index)

    # A fresh process: load, first search, then the query set (the real search path).
    out = work / f"child-{n}.json"
    subprocess.run([sys.executable, __file__, "--child", str(index), str(qfile), str(out)],
                   check=True)
    loaded = json.loads(out.read_text())

    # Recall of the vector index the product built, against exact search on the same vectors.
    manifest = json.loads((index / "manifest.json").read_text())
    vec = Vectors.load(index / manifest["vectors"], manifest["kind"])
    exact = exact_top(vectors, qvecs, 10)
    approx = [vec.search(q, 10)[1] for q in qvecs]
    sweep = []
    if vec.kind == "ivf":
        nlist = vec.index.nlist if hasattr(vec.index, "nlist") else 0
        default = vec.index.nprobe
        for nprobe in sorted({8, 16, 32, 64, default, 2 * default}):
            vec.index.nprobe = nprobe
            t1 = time.perf_counter()
            got = [vec.search(q, 10)[1] for q in qvecs]
            ms = (time.perf_counter() - t1) * 1000 / len(qvecs)
            sweep.append((nlist, nprobe, recall(got, exact, 10), ms))
        vec.index.nprobe = default
    del vec

    # Updates of one article: as `rag index FILE` (fresh process) and in a process that
    # already has the index loaded (the UI, a long-running service).
    upd = work / f"new-{n}"
    shutil.rmtree(upd, ignore_errors=True)
    upd.mkdir()
    (upd / "fresh.txt").write_text("Ferry crews strike\n\n" + " ".join(
        corpus.text(3, np.random.default_rng(5)) for _ in range(3)))
    out2 = work / f"update-{n}.json"
    subprocess.run([sys.executable, __file__, "--update", str(index), str(upd), str(out2)],
                   check=True)
    fresh = json.loads(out2.read_text())
    (upd / "fresh.txt").unlink()
    (upd / "warm.txt").write_text("Harbour reopens\n\n" + corpus.text(4, np.random.default_rng(6)))
    import rag.index.facade as ri

    timers = _timers(ri)
    idx = Index.load(index, embedder=QueryTable({texts[0]: qvecs[0]}))
    idx.search(texts[0], k=10)  # the state is loaded in this process, as in a server
    for k in timers:
        timers[k] = 0.0
    t1 = time.perf_counter()
    idx.add([upd], progress=False)
    warm = {"seconds": time.perf_counter() - t1, **timers}
    idx.close()
    return {"n": n, "kind": derived["kind"], "store_s": t_store, "derived": derived,
            "disk": sizes, "child": loaded, "recall": recall(approx, exact, 10),
            "sweep": sweep, "fresh_update": fresh, "warm_update": warm, "queries": n_queries}


def report(results: list[dict[str, Any]]) -> None:
    mb = 2**20
    print("\n### Scale: build, size, memory, startup\n")
    print("| chunks | index | store insert s | FAISS+BM25 build s (FAISS / BM25) | build "
          "peak RSS MB | disk MB: total (store / FAISS / BM25) | RSS before load MB | RSS "
          "after load + 1 search MB | startup (load + first search) s |")
    print("| ---: | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    for r in results:
        d, c, b = r["disk"], r["child"], r["derived"]
        print(f"| {r['n']:,} | {r['kind']} | {r['store_s']:.0f} | {b['seconds']:.0f} "
              f"({b['faiss_build']:.0f} / {b['bm25_build']:.0f}) | {b['peak_rss']:,.0f} | "
              f"{d['total'] / mb:,.0f} ({d['store'] / mb:,.0f} / {d['faiss'] / mb:,.0f} / "
              f"{d['bm25'] / mb:,.0f}) | {c['baseline_rss']:.0f} | {c['rss_after_load']:.0f} | "
              f"{c['startup_s']:.1f} |")
    print(f"\n### Search ({results[0]['queries']} held-out queries, k=10, through "
          "`Index.search`)\n")
    print("| chunks | hybrid p50 ms | hybrid p95 ms | dense p50 ms | dense p95 ms | "
          "vector recall@10 vs exact | RSS after searches MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        c = r["child"]
        print(f"| {r['n']:,} | {c['hybrid']['p50']:.1f} | {c['hybrid']['p95']:.1f} | "
              f"{c['dense']['p50']:.1f} | {c['dense']['p95']:.1f} | {r['recall']:.3f} | "
              f"{c['rss_after_searches']:.0f} |")
    sweeps = [r for r in results if r["sweep"]]
    if sweeps:
        print("\n### IVF-SQ8 probe sweep (FAISS alone, same queries)\n")
        print("| chunks | nlist | nprobe | recall@10 | ms/query |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for r in sweeps:
            for nlist, nprobe, rec, ms in r["sweep"]:
                print(f"| {r['n']:,} | {nlist} | {nprobe} | {rec:.3f} | {ms:.2f} |")
    print("\n### Adding one article\n")
    print("| chunks | as `rag index FILE` (fresh process) s | of which BM25 update / rebuild s "
          "| writing the files s | peak RSS MB | in a process with the index loaded s | "
          "of which BM25 update / rebuild s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        f, w = r["fresh_update"], r["warm_update"]
        print(f"| {r['n']:,} | {f['seconds']:.1f} | {f['bm25_update']:.2f} / "
              f"{f['bm25_build']:.1f} | {f['persist']:.1f} | {f['peak_rss']:,.0f} | "
              f"{w['seconds']:.1f} | {w['bm25_update']:.2f} / {w['bm25_build']:.1f} |")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--derive":
        derive(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--update":
        fresh_update(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--workdir", type=Path, help="keep the indexes here (default: a temp dir)")
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [run_size(n, work, args.queries) for n in args.sizes]
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
