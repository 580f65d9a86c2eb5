"""Ingestion benchmark: index a corpus end to end beside the embedder's own rate on the same work.

    python bench/ingest.py [--corpus FILE.jsonl] [--limit N] [--backend onnx|torch] [--threads N]
        [--sentences] [--llamaindex]

Indexes the corpus (or its first `--limit` articles) into a temporary folder and prints
articles, chunks, characters, wall seconds, chunks/s end to end, and the embedder's own
rate: the same texts (chunks, and with `--sentences` every sentence alone, exactly as the
index embedded them, at the same precision and batching) timed inside the embedder's
calls; and the seconds of each stage of the build (read/chunk, embed, store, search files). End to end / own rate
is the share of the wall time the hardware spent embedding. Also peak RSS and search
latency p50/p95 over the corpus's queries (a `queries.jsonl` beside it).
Skips with a message when the corpus is absent (it is not shipped with the product).

`--llamaindex` (needs `pip install -e '.[peers]'`): after our build, LlamaIndex's default
ingestion (Document per article, default SentenceSplitter, VectorStoreIndex, persist) over
the same articles with the same embedder, and one table, system | chars embedded | wall s |
hit@5. hit@5 is on the gold beside the corpus: BEIR qrels (a judged article among the top 5
documents; a slice keeps only queries with one in it) or news `gold.jsonl` (a gold answer
in one of the top 5 passages, as bench/peers.py scores it). See bench/ingest_llama.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from ingest_llama import compare, table
from peers import require_llama

from rag import Index
from rag.embed.embedder import embedder_for
from rag.eval.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"


class Timed:
    """The embedder, with the time spent inside `embed` and what it embedded counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0
        self.chars = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        t = time.perf_counter()
        out: np.ndarray = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t
        self.texts += len(texts)
        self.chars += sum(len(x) for x in texts)
        return out


class PeakWatch:
    """When the process's peak resident memory was reached (Linux's VmHWM, sampled every
    50 ms on a thread): which stage of the build holds the peak."""

    def __init__(self) -> None:
        import threading

        self.t0 = time.perf_counter()
        self.at, self.mb, self._stop = 0.0, 0, threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(0.05):
            try:
                mb = int(status.read_text().split("VmHWM:")[1].split()[0]) // 1024
            except (OSError, IndexError, ValueError):  # not Linux: no timeline
                return
            if mb > self.mb:
                self.at, self.mb = time.perf_counter() - self.t0, mb

    def stop(self) -> str:
        self._stop.set()
        return f"{self.at:.1f} s into the build" if self.mb else "n/a"


def update_one(index: Path, corpus: Path, tmp: Path) -> tuple[float, float]:
    """Seconds to re-index one changed article in a copy of `index`: in a process that has
    the index loaded (the chat, a service), and as a fresh `rag index FILE` process (a
    user at the terminal: imports and loading included). The article is a real one of the
    corpus as a text file, indexed once, then changed: only it is embedded again."""
    import shutil
    import subprocess

    copy = tmp / "update-copy"
    shutil.copytree(index, copy)
    first = json.loads(next(iter(corpus.open()))) if corpus.suffix == ".jsonl" else {}
    body = str(first.get("text") or "A harbour strike closed the port for two days.")
    article = tmp / "update" / "changed.txt"
    article.parent.mkdir()
    article.write_text(f"Port strike\n\n{body}")
    idx = Index.load(copy)
    idx.search("warm up", k=5)  # the state is loaded, as in a running chat
    idx.add([article.parent], progress=False)
    article.write_text(f"Port strike, day two\n\n{body}\n\nTalks resumed on Tuesday.")
    t = time.perf_counter()
    idx.add([article.parent], progress=False)
    loaded = time.perf_counter() - t
    idx.close()
    article.write_text(f"Port strike, day three\n\n{body}\n\nThe port reopened on Friday.")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rag", "index", str(article.parent), "--index",
                    str(copy), "-q"], check=True, stdout=subprocess.DEVNULL)
    return loaded, time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT)
    p.add_argument("--limit", type=int, help="index only the first N articles of a JSONL")
    p.add_argument("--backend", choices=["onnx", "torch"], help="default: as `rag index` picks")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="e.g. add +int8 for the quantized ONNX model")
    p.add_argument("--threads", type=int)
    p.add_argument("--keep", type=Path, help="build the index here and keep it")
    p.add_argument("--sentences", action="store_true",
                   help="also store sentence vectors (rag index --sentences; off by default)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines on stderr (a whole news-dev build takes ~20 min)")
    p.add_argument("--update-one", action="store_true",
                   help="then time re-indexing one changed article in a copy of the index: "
                        "in a process that has it loaded, and as a fresh `rag index`")
    p.add_argument("--llamaindex", action="store_true",
                   help="also build LlamaIndex's default pipeline with the same embedder and "
                        "compare chars embedded, wall seconds and hit@5")
    args = p.parse_args()
    if not args.corpus.exists():
        print(f"skipped: {args.corpus} not found (the benchmark data lives in ../shared/)")
        return 0
    if args.llamaindex:
        require_llama()  # before our build, not after minutes of it
        if args.corpus.suffix != ".jsonl":
            p.error("--llamaindex reads a JSONL corpus (id, title, text[, published]); "
                    f"{args.corpus} is not one")
    if args.backend:
        os.environ["RAG_EMBED_BACKEND"] = args.backend
    embedder = Timed(embedder_for(args.model, threads=args.threads))
    embedder.embed(["warm up"])  # the model load is not indexing
    embedder.seconds, embedder.texts, embedder.chars = 0.0, 0, 0
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if args.limit:
            corpus = Path(tmp) / f"first-{args.limit}.jsonl"
            with args.corpus.open() as src:
                corpus.write_text("".join(islice(src, args.limit)))
        where = args.keep or Path(tmp) / "index"
        t0 = time.perf_counter()
        watch = PeakWatch()
        idx = Index.build([corpus], path=where, embedder=embedder, progress=not args.quiet,
                          sentences=args.sentences)
        wall = time.perf_counter() - t0
        peak_at = watch.stop()
        # The build's figures, before the searches below embed their queries through it too.
        seconds, texts, chars_in = embedder.seconds, embedder.texts, embedder.chars
        rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rep = idx.last_report
        assert rep is not None
        queries_file = args.corpus.parent / "queries.jsonl"
        queries = [json.loads(line)["text"] for line in queries_file.open()] \
            if queries_file.exists() else []
        lat = []
        for q in queries[:100]:
            t = time.perf_counter()
            idx.search(q, k=10)
            lat.append((time.perf_counter() - t) * 1000)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        update = update_one(where, args.corpus, Path(tmp)) if args.update_one else None
        peer = compare(args.corpus, corpus, idx, chars_in, wall, embedder.inner,
                       Path(tmp) / "llamaindex") if args.llamaindex else None
    chars = sum(len(json.loads(line).get("text", "")) for line in
                islice(args.corpus.open(), args.limit)) if args.corpus.suffix == ".jsonl" else 0
    own = rep.chunks / seconds if seconds else float("nan")
    rows = [
        ("embedder", f"{type(embedder.inner).__name__} {embedder.name} "
                     f"(threads {getattr(embedder.inner, 'threads', None) or 'auto'})"),
        ("articles", f"{rep.articles}"), ("article characters", f"{chars:,}"),
        ("chunks", f"{rep.chunks}"),
        ("texts embedded (chunks" + (" + sentences)" if args.sentences else ")"),
         f"{texts} ({chars_in:,} chars)"),
        ("wall seconds", f"{wall:.1f}"), ("seconds inside embed()", f"{seconds:.1f}"),
        ("seconds per stage", rep.stages.summary()),
        ("chunks/s end to end", f"{rep.chunks / wall:.1f}"),
        ("chunks/s embedder alone (same texts)", f"{own:.1f}"),
        ("end to end / embedder alone", f"{seconds / wall:.0%}"),
        ("peak RSS MB: the build", f"{rss_build:.0f} (reached {peak_at})"),
        ("peak RSS MB: after 100 searches", f"{rss:.0f}"),
        ("load average (start / end)", f"{load0:.1f} / {os.getloadavg()[0]:.1f}"),
    ]
    if lat:
        rows += [("search p50 / p95 ms", f"{percentile(lat, 50):.1f} / {percentile(lat, 95):.1f}")]
    if update:
        rows += [("re-indexing one changed article: loaded / fresh `rag index` s",
                  f"{update[0]:.2f} / {update[1]:.2f}")]
    print("| figure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    if peer:
        print(f"\n{table(peer[0])}\n\n{peer[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
