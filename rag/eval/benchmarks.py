"""`rag bench`: public benchmarks, read from where they lie (never copied into the repo).

- `beir DIR`: a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv), e.g. SciFact.
  Documents are ranked by their best hit (first occurrence of each article in `search()`'s
  list); nDCG@10, Recall@100 and MRR@10 are computed as BEIR / pytrec_eval do.
- `squad FILE`: a SQuAD 2.0 sample (qa.jsonl rows with `context`, `answers`,
  `is_impossible`). The corpus is the distinct paragraphs; the questions go through
  `rag.eval.runner.evaluate`, so the result has `rag eval`'s keys.

Where the data is absent (a user's machine has no ../shared), the command says so and
exits 0.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag.errors import InputError
from rag.eval.metrics import ndcg_at_k, percentile, recall_at_k, reciprocal_rank
from rag.eval.runner import (
    Gold,
    default_index_dir,
    evaluate,
    notes,
    open_index,
    summary_table,
    table,
    write_outputs,
)
from rag.options import SEARCH_MODES, SearchMode

if TYPE_CHECKING:
    from rag.index.facade import Index
    from rag.ingest.chunking import ChunkSpec

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
DOCS = 100  # distinct documents ranked per query (Recall@100)
Suite = Literal["beir", "squad"]
# Published SciFact nDCG@10 figures (see ../shared/README.md), for the report.
PUBLISHED = (
    ("BM25 (BEIR paper)", 0.665),
    ("BM25, Anserini flat", 0.679),
    ("all-MiniLM-L6-v2 dense", 0.645),
    ("BM25 + MiniLM cross-encoder", 0.688),
    ("RRF(BM25, MiniLM), k=60, this copy", 0.723),
)


# -- BEIR ----------------------------------------------------------------------------------------
def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {doc id: relevance} from a BEIR qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def load_queries(path: Path, wanted: Sequence[str]) -> list[tuple[str, str]]:
    """(id, text) of the queries in `wanted`, in the order of `wanted`."""
    texts: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                texts[str(obj["_id"])] = str(obj["text"])
    missing = [q for q in wanted if q not in texts]
    if missing:
        raise InputError(f"{len(missing)} judged queries are not in {path} (e.g. {missing[0]}); "
                         "check the dataset is complete")
    return [(q, texts[q]) for q in wanted]


def rank_documents(index: Index, query: str, *, mode: SearchMode = "hybrid", docs: int = DOCS,
                   chunks: int = 300, max_chunks: int = 2400) -> list[str]:
    """Article ids ranked by their best hit, up to `docs` of them.

    Asks `search()` for `chunks` passages, doubling while that yields fewer than `docs`
    distinct articles and more passages exist.
    """
    while True:
        hits = index.search(query, k=chunks, mode=mode)
        ranked = list(dict.fromkeys(h.article_id for h in hits))
        if len(ranked) >= docs or len(hits) < chunks or chunks >= max_chunks:
            return ranked[:docs]
        chunks *= 2


def _beir_scores(index: Index, queries: Sequence[tuple[str, str]],
                 qrels: dict[str, dict[str, int]], mode: SearchMode) -> dict[str, Any]:
    ndcg, recall, rr, latency = [], [], [], []
    for qid, text in queries:
        t0 = time.perf_counter()
        ranked = rank_documents(index, text, mode=mode)
        latency.append((time.perf_counter() - t0) * 1000)
        rel = qrels[qid]
        ndcg.append(ndcg_at_k(ranked, rel, 10))
        recall.append(recall_at_k(ranked, rel, DOCS))
        rr.append(reciprocal_rank([rel.get(d, 0) > 0 for d in ranked[:10]]))
    n = len(queries)
    return {
        "ndcg@10": round(sum(ndcg) / n, 4), "recall@100": round(sum(recall) / n, 4),
        "mrr@10": round(sum(rr) / n, 4),
        "latency_p50_ms": round(percentile(latency, 50), 2),
        "latency_p95_ms": round(percentile(latency, 95), 2),
    }


def bench_beir(data: str | os.PathLike[str], index_dir: str | os.PathLike[str], *,
               mode: SearchMode = "hybrid", ablate: bool = False, limit: int | None = None,
               threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """nDCG@10, Recall@100 and MRR@10 of `search()` on a BEIR dataset folder.

    The corpus is indexed at `index_dir` (reused when it is there). Queries are those judged
    in qrels/test.tsv (the first `limit` of them if given). With `ablate`, `ablations` holds
    the figures of dense-only, BM25-only and hybrid search on the same index.
    """
    root = Path(data)
    qrels = load_qrels(root / "qrels" / "test.tsv")
    queries = load_queries(root / "queries.jsonl", list(qrels)[:limit])
    idx, seconds = open_index(root / "corpus.jsonl", index_dir, threads=threads,
                              progress=progress)
    idx.search("warm up the model", k=1)
    result: dict[str, Any] = {"dataset": root.name, "mode": mode, "n_queries": len(queries),
                              "n_docs": idx.stats().articles}
    result.update(_beir_scores(idx, queries, qrels, mode))
    result["index_seconds"] = round(seconds, 3)
    if ablate:
        result["ablations"] = {
            m: result if m == mode else _beir_scores(idx, queries, qrels, m) for m in SEARCH_MODES}
        result["ablations"] = {m: {k: v for k, v in row.items() if k in
                                   ("ndcg@10", "recall@100", "mrr@10")}
                               for m, row in result["ablations"].items()}
    idx.close()
    return result


def _beir_table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("dataset", (f"{result['dataset']} ({result['n_queries']} queries, "
                     f"{result['n_docs']} documents), {result['mode']} search")),
        ("nDCG@10", result["ndcg@10"]), ("Recall@100", result["recall@100"]),
        ("MRR@10", result["mrr@10"]),
        ("search p50 / p95 (ms)",
         f"{result['latency_p50_ms']:.0f} / {result['latency_p95_ms']:.0f}"),
        ("index seconds", result["index_seconds"]),
    ]
    lines = [table(rows)]
    for m, row in (result.get("ablations") or {}).items():
        lines.append(f"{m:>8}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return "\n".join(lines)


def _beir_notes(result: dict[str, Any]) -> str:
    published = "; ".join(f"{name} {v:.3f}" for name, v in PUBLISHED)
    return (f"{result['dataset']}: {result['n_queries']} judged test queries over "
            f"{result['n_docs']} documents; documents ranked by their best search hit. "
            f"{result['mode']} search: nDCG@10 {result['ndcg@10']:.3f}, Recall@100 "
            f"{result['recall@100']:.3f}, MRR@10 {result['mrr@10']:.3f}. Latency is per query "
            "(one search() deep enough to rank 100 documents); index time is the time to "
            "build the index or find it up to date. "
            f"Published SciFact nDCG@10 for comparison: {published}.")


# -- SQuAD 2.0 -----------------------------------------------------------------------------------
def squad_corpus(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, str]], list[Gold]]:
    """The distinct paragraphs as articles ("squad-<n>", first seen first) and the gold.

    >>> arts, gold = squad_corpus([{"id": "q", "question": "Who?", "context": "Ann ran.",
    ...                             "answers": ["Ann"], "is_impossible": False}])
    >>> arts[0]["id"], gold[0].source, gold[0].answers
    ('squad-1', 'squad-1', ('Ann',))
    """
    ids: dict[str, str] = {}
    articles: list[dict[str, str]] = []
    gold: list[Gold] = []
    for row in rows:
        context = str(row["context"])
        if context not in ids:
            ids[context] = f"squad-{len(ids) + 1}"
            articles.append({"id": ids[context], "title": str(row.get("title") or ""),
                             "text": context})
        raw = row.get("answers") or []
        if isinstance(raw, dict):  # the HF datasets shape: {"text": [...], "answer_start": [...]}
            raw = raw.get("text") or []
        answers = tuple(a for a in (str(x) for x in raw) if a.strip())
        impossible = bool(row.get("is_impossible")) or not answers
        gold.append(Gold(id=str(row["id"]), question=str(row["question"]),
                         answers=() if impossible else answers, unanswerable=impossible,
                         source=ids[context]))
    return articles, gold


def bench_squad(qa_path: str | os.PathLike[str], index_dir: str | os.PathLike[str], *,
                limit: int | None = None, k: int = 5, ablate: bool = False,
                chunking: ChunkSpec | None = None, threads: int | None = None,
                progress: bool = False) -> dict[str, Any]:
    """`evaluate()` on a SQuAD 2.0 sample; the result has `rag eval`'s keys.

    The paragraphs of the first `limit` questions (all by default) are written as a JSONL
    corpus beside `index_dir` (`<index_dir>-corpus.jsonl`) and indexed at `index_dir`.
    """
    rows = []
    with Path(qa_path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    rows = rows[:limit]
    articles, gold = squad_corpus(rows)
    index_dir = Path(index_dir)
    corpus = index_dir.with_name(index_dir.name + "-corpus.jsonl")
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles),
                      encoding="utf-8")
    idx, seconds = open_index(corpus, index_dir, threads=threads, chunking=chunking,
                              progress=progress)
    result = evaluate(gold, idx, k=k, index_seconds=round(seconds, 3), ablate=ablate,
                      progress=progress)
    chunks = idx.stats().chunks
    idx.close()
    return {"dataset": Path(qa_path).parent.name, "n_paragraphs": len(articles),
            "n_chunks": chunks, **result}


# -- the command ---------------------------------------------------------------------------------
def _missing(suite: str, data: Path) -> str | None:
    if suite == "squad":
        return None if data.is_file() else str(data)
    if not data.is_dir():
        return str(data)
    return next((str(data / f) for f in BEIR_FILES if not (data / f).is_file()), None)


# Where a development checkout has the public benchmarks (beside the repo, never in it).
DEFAULT_DATA = {"beir": Path("../shared/datasets/scifact"),
                "squad": Path("../shared/datasets/squad2-500/qa.jsonl")}


def run_bench(suite: Suite, data: str | os.PathLike[str] | None = None, *,
              index: str | os.PathLike[str] | None = None,
              json_out: str | os.PathLike[str] | None = None,
              report: str | os.PathLike[str] | None = None, mode: SearchMode = "hybrid",
              threads: int | None = None, progress: bool = False) -> dict[str, Any] | None:
    """Run a public benchmark, print its table and write its JSON/report; the figures.

    `data` left out means the development checkout's copy in ../shared: absent there, the
    benchmark is skipped with a message (None). A `data` path given that does not exist
    is an `InputError`.
    """
    path = Path(data) if data is not None else DEFAULT_DATA[suite]
    missing = _missing(suite, path)
    if missing and data is not None:
        raise InputError(f"{missing} not found; give the {suite} data's path "
                         f"({'a BEIR folder' if suite == 'beir' else 'a SQuAD qa.jsonl'})")
    if missing:
        print(f"skipped: {missing} not found (the public benchmarks are read from "
              "../shared/datasets/, which only a development checkout has)")
        return None
    index_dir = index or default_index_dir(f"bench-{suite}", path)
    json_path = None if json_out is None else str(json_out)
    report_dir = None if report is None else str(report)
    print(f"index {index_dir}")
    if suite == "beir":
        result = bench_beir(path, index_dir, mode=mode, ablate=bool(report), threads=threads,
                            progress=progress)
        print(_beir_table(result))
        write_outputs(result, json_path, report_dir, f"rag bench beir: {path.name}",
                      _beir_notes(result))
        return result
    if mode != "hybrid":
        print("note: --mode applies to beir; squad answers use the chat's hybrid search "
              "(the report's ablations compare the modes)")
    result = bench_squad(path, index_dir, ablate=bool(report), threads=threads,
                         progress=progress)
    print(f"{result['dataset']}: {result['n_paragraphs']} paragraphs")
    print(summary_table(result))
    write_outputs(result, json_path, report_dir, f"rag bench squad: {result['dataset']}",
                  notes(result) + " Each question's source is its own paragraph.")
    return result
