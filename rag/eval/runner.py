"""`rag eval`: gold question/answer pairs scored against the same `answer()` the chat uses.

    from rag import Index
    from rag.eval.runner import evaluate
    idx = Index.build(["seeds/"], path="/tmp/idx", progress=False)
    result = evaluate("eval/gold/seeds.jsonl", idx)
    print(result["hit@5"], result["answer_contains"])

Gold is JSONL, one question a line: `{"id", "question", "answers": [...],
"unanswerable": false, "source": "<optional article id or file name>"}`.

What is measured (the result's keys; rates are 0-1):
- retrieval, over ANSWERABLE questions only, on the 10 passages `retrieve()` returns:
  `hit@1`, `hit@5`, `hit@10`, `mrr`, `hit_curve`. A passage is a hit when it contains a gold
  answer string, or comes from the gold `source` article. `passage` repeats these (and the
  citation precision) with the answer-string rule alone, which is the stricter figure when
  the corpus has one article per source.
- answers: `answer_contains` (the answer text contains a gold string; answerable only),
  `token_f1` (SQuAD F1 against the best gold answer; on an unanswerable question 1 if it
  abstained, else 0; averaged over all questions), `citation_precision` (citations on
  answerable questions whose quote contains a gold answer or comes from the gold source).
- abstention: `abstain_precision`, `abstain_recall`, `false_abstention`; `sweep` (every
  useful confidence threshold) and `threshold` (the most accurate one).
- time: `latency_p50_ms`, `latency_p95_ms` of `answer()`, and `index_seconds`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError
from rag.eval.metrics import (
    abstention_scores,
    best_threshold,
    contains_answer,
    hit_at_k,
    percentile,
    reciprocal_rank,
    threshold_sweep,
    token_f1,
)
from rag.markers import strip_markers

if TYPE_CHECKING:
    from rag.index.facade import Index
    from rag.ingest.chunking import ChunkSpec
    from rag.results import Answer, Hit

RETRIEVAL_DEPTH = 10
MODES = ("dense", "lexical", "hybrid")


@dataclass(frozen=True)
class Gold:
    """One gold question. `answers` are alternatives; an unanswerable question has none."""

    id: str
    question: str
    answers: tuple[str, ...]
    unanswerable: bool
    source: str | None = None


@dataclass(frozen=True)
class QuestionResult:
    """How one question went; `hit_rank` is 1-based, None when no passage in the top 10 hit."""

    id: str
    question: str
    answer: str
    abstained: bool
    unanswerable: bool
    confidence: float
    latency_ms: float
    hit_rank: int | None
    passage_rank: int | None
    contains: bool
    f1: float
    citations: list[dict[str, Any]]
    good_citations: int
    passage_citations: int


def load_gold(path: str | os.PathLike[str]) -> list[Gold]:
    """Read a gold JSONL file; raises `InputError` naming the bad line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no gold file at {p}; give a JSONL file of gold questions")
    items: list[Gold] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            answers = tuple(a for a in obj.get("answers") or () if str(a).strip())
            item = Gold(id=str(obj.get("id") or f"line-{n}"), question=str(obj["question"]),
                        answers=answers, unanswerable=bool(obj.get("unanswerable")),
                        source=obj.get("source") or None)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{p}, line {n}: not a gold question ({e}); each line needs "
                             '{"id", "question", "answers": [...], "unanswerable"}') from e
        if not item.unanswerable and not item.answers:
            raise InputError(f"{p}, line {n}: answerable question with no answers; add "
                             'answers or mark it "unanswerable": true')
        items.append(item)
    return items


def _from_source(article_id: str, path: str | None, source: str | None) -> bool:
    if not source:
        return False
    return source == article_id or (path is not None and Path(path).name == source)


def _relevant(hit: Hit, gold: Gold) -> bool:
    return contains_answer(hit.text, gold.answers) or _from_source(hit.article_id, hit.path,
                                                                    gold.source)


def _rank(flags: Sequence[bool]) -> int | None:
    return next((i for i, f in enumerate(flags, start=1) if f), None)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _score(gold: Gold, ans: Answer, hits: Sequence[Hit], latency_ms: float) -> QuestionResult:
    text = "" if ans.abstained else strip_markers(ans.text).strip()
    if gold.unanswerable:
        f1 = float(ans.abstained)
    else:
        f1 = token_f1(text, gold.answers) if text else 0.0
    cites = [] if ans.abstained else list(ans.citations)
    return QuestionResult(
        id=gold.id, question=gold.question, answer=ans.text, abstained=ans.abstained,
        unanswerable=gold.unanswerable, confidence=float(ans.confidence),
        latency_ms=round(latency_ms, 2),
        hit_rank=_rank([_relevant(h, gold) for h in hits]),
        passage_rank=_rank([contains_answer(h.text, gold.answers) for h in hits]),
        contains=bool(text) and contains_answer(text, gold.answers),
        f1=round(f1, 4),
        citations=[{"n": c.n, "article_id": c.article_id, "quote": c.quote, "start": c.start,
                    "end": c.end} for c in cites],
        good_citations=sum(contains_answer(c.quote, gold.answers)
                           or _from_source(c.article_id, c.path, gold.source) for c in cites),
        passage_citations=sum(contains_answer(c.quote, gold.answers) for c in cites),
    )


def _retrieval(ranks: Sequence[int | None], prefix: str = "") -> dict[str, float]:
    flags = [[r is not None and r == i for i in range(1, RETRIEVAL_DEPTH + 1)] for r in ranks]
    out = {f"{prefix}hit@{k}": _mean([hit_at_k(f, k) for f in flags]) for k in (1, 5, 10)}
    out[f"{prefix}mrr"] = _mean([reciprocal_rank(f) for f in flags])
    return out


def ablate_modes(gold: Sequence[Gold], index: Index) -> dict[str, dict[str, float]]:
    """Retrieval of the answerable questions with dense only, BM25 only, and hybrid search."""
    answerable = [g for g in gold if not g.unanswerable]
    table: dict[str, dict[str, float]] = {}
    for mode in MODES:
        ranks, strict = [], []
        for g in answerable:
            hits = index.search(g.question, k=RETRIEVAL_DEPTH, mode=mode)
            ranks.append(_rank([_relevant(h, g) for h in hits]))
            strict.append(_rank([contains_answer(h.text, g.answers) for h in hits]))
        row = _retrieval(ranks)
        row.update(_retrieval(strict, "passage "))
        table[mode] = {k: round(v, 4) for k, v in row.items() if not k.endswith("@10")}
    return table


def evaluate(
    gold_path: str | os.PathLike[str] | Iterable[Gold], index: Index, *, k: int = 5,
    index_seconds: float | None = None, ablate: bool = False, progress: bool = False,
) -> dict[str, Any]:
    """Run `answer()` on every gold question and score it; returns the JSON-ready result.

    `gold_path` is a gold JSONL file or `Gold` items. `k` is the number of passages the
    answer draws on (as in the chat). With `ablate`, the result's `ablations` compares
    dense, BM25 and hybrid retrieval.
    """
    from rag.answering.answer import ABSTAIN_BELOW, answer, retrieve

    gold = load_gold(gold_path) if isinstance(gold_path, (str, os.PathLike)) else list(gold_path)
    if not gold:
        raise InputError("the gold set is empty; add at least one question")
    index.search("warm up the model", k=1)  # the first query loads it: keep that out of latency
    results: list[QuestionResult] = []
    for n, g in enumerate(gold, start=1):
        t0 = time.perf_counter()
        ans = answer(g.question, index, k=k)
        latency_ms = (time.perf_counter() - t0) * 1000
        hits = retrieve(g.question, index, k=RETRIEVAL_DEPTH)
        results.append(_score(g, ans, hits, latency_ms))
        if progress and (n % 25 == 0 or n == len(gold)):
            print(f"  {n}/{len(gold)} questions", file=sys.stderr, flush=True)
    result = summarize(results, index_seconds=index_seconds,
                       ablations=ablate_modes(gold, index) if ablate else None)
    result["abstain_below"] = ABSTAIN_BELOW
    return result


def summarize(results: Sequence[QuestionResult], *, index_seconds: float | None = None,
              ablations: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The metrics of `evaluate()` from per-question results."""
    answerable = [r for r in results if not r.unanswerable]
    unanswerable = [r for r in results if r.unanswerable]
    precision, recall, false_abstention = abstention_scores(
        [r.abstained for r in results], [r.unanswerable for r in results])
    cites = sum(len(r.citations) for r in answerable)
    latencies = [r.latency_ms for r in results]
    conf_a = [r.confidence for r in answerable]
    conf_u = [r.confidence for r in unanswerable]
    curve_flags = [[r.hit_rank is not None and r.hit_rank <= k for r in answerable]
                   for k in range(1, RETRIEVAL_DEPTH + 1)]
    out: dict[str, Any] = {
        "n": len(results),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        **_retrieval([r.hit_rank for r in answerable]),
        "answer_contains": _mean([float(r.contains) for r in answerable]),
        "token_f1": _mean([r.f1 for r in results]),
        # No citations made, none wrong: 1.0, as rag.eval.metrics scores empty denominators.
        "citation_precision": sum(r.good_citations for r in answerable) / cites if cites else 1.0,
        "abstain_precision": precision,
        "abstain_recall": recall,
        "false_abstention": false_abstention,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "index_seconds": index_seconds,
    }
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    passage = _retrieval([r.passage_rank for r in answerable])
    passage["citation_precision"] = (sum(r.passage_citations for r in answerable) / cites
                                     if cites else 1.0)
    out["passage"] = {k: round(v, 4) for k, v in passage.items()}
    out["hit_curve"] = [[k, round(_mean([float(f) for f in flags]), 4)]
                        for k, flags in enumerate(curve_flags, start=1)]
    sweep = threshold_sweep(conf_a, conf_u)
    out["sweep"] = [{f: round(v, 4) for f, v in p._asdict().items()} for p in sweep]
    out["threshold"] = round(best_threshold(conf_a, conf_u), 4) if sweep else None
    if ablations:
        out["ablations"] = ablations
    out["questions"] = [
        {k: v for k, v in asdict(r).items() if k not in ("good_citations", "passage_citations")}
        for r in results
    ]
    return out


# -- the command --------------------------------------------------------------------------------
def default_index_dir(kind: str, data: str | os.PathLike[str]) -> Path:
    """A reusable index folder under the temp dir, keyed by the data's absolute path."""
    key = hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rag-{kind}-{key}"


def open_index(corpus: str | os.PathLike[str], path: str | os.PathLike[str], *,
               threads: int | None = None, bf16: bool | None = None,
               chunking: ChunkSpec | None = None, progress: bool = False) -> tuple[Index, float]:
    """Build the index of `corpus` at `path`, or bring an existing one up to date.

    Returns the index and the seconds it took (small when nothing changed).
    """
    from rag.embed.embedder import SentenceTransformerEmbedder
    from rag.index.facade import Index

    t0 = time.perf_counter()
    idx = Index.open(path, chunking=chunking)
    emb = idx.embedder
    if isinstance(emb, SentenceTransformerEmbedder):  # not loaded yet: settings still apply
        emb.threads = threads or emb.threads
        emb.bf16 = emb.bf16 if bf16 is None else bf16
    report = idx.add([corpus], sync=True, progress=progress)
    for s in report.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    return idx, time.perf_counter() - t0


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def table(rows: Sequence[tuple[str, Any]]) -> str:
    """Two aligned columns for the terminal.

    >>> print(table([("hit@1", 0.5), ("n", 3)]))
    hit@1  0.500
    n      3
    """
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_fmt(value)}" for name, value in rows)


def summary_table(result: dict[str, Any]) -> str:
    """The terminal table of an eval result."""
    p = result.get("passage") or {}
    rows: list[tuple[str, Any]] = [
        ("questions", (f"{result['n']} ({result['n_answerable']} answerable, "
                       f"{result['n_unanswerable']} unanswerable)")),
        ("hit@1 / @5 / @10", " / ".join(_fmt(result[f"hit@{k}"]) for k in (1, 5, 10))),
        ("MRR", result["mrr"]),
        ("passage hit@1 / @5 / @10", " / ".join(_fmt(p.get(f"hit@{k}")) for k in (1, 5, 10))),
        ("passage MRR", p.get("mrr")),
        ("answer contains gold", result["answer_contains"]),
        ("token F1", result["token_f1"]),
        ("citation precision", result["citation_precision"]),
        ("passage citation precision", p.get("citation_precision")),
        ("abstain precision", result["abstain_precision"]),
        ("abstain recall", result["abstain_recall"]),
        ("false abstention", result["false_abstention"]),
        ("best threshold (sweep)", result["threshold"]),
        ("latency p50 / p95 (ms)",
         f"{result['latency_p50_ms']:.0f} / {result['latency_p95_ms']:.0f}"),
        ("index seconds", result["index_seconds"]),
    ]
    lines = [table(rows), "(retrieval metrics are over answerable questions only)"]
    for mode, row in (result.get("ablations") or {}).items():
        lines.append(f"{mode:>8}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return "\n".join(lines)


def notes(result: dict[str, Any]) -> str:
    """The report's reading notes: what each figure is computed over."""
    p = result.get("passage") or {}
    strict = ", ".join(f"{k} {v:.3f}" for k, v in p.items())
    return (
        f"Retrieval metrics (hit@k, MRR, the hit@k curve and the ablations) are over the "
        f"{result['n_answerable']} answerable questions only, on the 10 passages `retrieve()` "
        "returns for the question. A passage is a hit when it contains a gold answer string or "
        "comes from the gold source article; counting only passages (and citations) that "
        f"contain a gold answer string: {strict}. Answer contains and citation precision are "
        "over answerable questions; token F1 is over all questions (an unanswerable question "
        "scores 1 when the answer abstained). The abstention threshold is the sweep's most "
        f"accurate one; the answerer abstains below {result.get('abstain_below')}."
    )


def add_notes(report: Path, title: str, intro: str) -> None:
    """Put a paragraph under the title of a `write_report` page."""
    text = report.read_text(encoding="utf-8")
    head = f"# {title}\n\n"
    if text.startswith(head):
        text = head + intro + "\n\n" + text[len(head):]
    else:
        text = text.rstrip() + "\n\n## Notes\n\n" + intro + "\n"
    report.write_text(text, encoding="utf-8")


def write_outputs(result: dict[str, Any], json_out: str | None, report_dir: str | None,
                  title: str, intro: str) -> None:
    """Write `--json` and `--report` (Markdown with PNG plots) where asked."""
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                                  encoding="utf-8")
        print(f"wrote {json_out}")
    if report_dir:
        from rag.eval.report import write_report

        path = write_report(result, Path(report_dir), title)
        add_notes(path, title, intro)
        print(f"wrote {path}")


def main(args: argparse.Namespace) -> int:
    """`rag eval GOLD --corpus PATH [--index DIR] [-k N] [--json OUT] [--report DIR]`."""
    corpus = Path(args.corpus)
    if not corpus.exists():
        raise InputError(f"no corpus at {corpus}; give the folder or JSONL of the articles")
    gold = load_gold(args.gold)
    # cli's --index defaults to the product's index/; eval builds its own unless told.
    index_dir = args.index if args.index not in (None, "index", os.environ.get("RAG_INDEX")) \
        else default_index_dir("eval", corpus)
    idx, seconds = open_index(corpus, index_dir, threads=getattr(args, "threads", None),
                              bf16=False if getattr(args, "no_bf16", False) else None,
                              progress=sys.stderr.isatty())
    print(f"index {index_dir}: {idx.stats().articles} articles, {seconds:.1f} s")
    result = evaluate(gold, idx, k=args.k, index_seconds=round(seconds, 3),
                      ablate=bool(args.report), progress=sys.stderr.isatty())
    print(summary_table(result))
    write_outputs(result, args.json_out, args.report, f"rag eval: {Path(args.gold).name} on "
                  f"{corpus.name or corpus}", notes(result))
    return 0
