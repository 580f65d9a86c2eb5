"""`rag eval`: gold question/answer pairs scored against the same `answer()` the chat uses.

    from rag import Index
    from rag.eval.runner import evaluate
    idx = Index.build(["seeds/"], path="/tmp/idx", progress=False)
    result = evaluate("eval/gold/seeds.jsonl", idx)
    print(result["hit@5"], result["answer_contains"])

Gold is JSONL, one question a line: `{"id", "question", "answers": [...],
"unanswerable": false, "source": "<optional article id or file name>"}`, optionally with
`question_date` (`2023/06/01`: the question is answered as of that date), `evidence` (a
sentence stating the answer: enables the strict figures) and `split` (figures per split).

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
  useful confidence threshold, confidence = 1 - P(unanswerable)) and `threshold` (the most
  accurate one).
- strict (with `evidence`): `strict_contains` and `strict hit@k` also need most of the
  evidence sentence's content words in the quote/passage.
- short answers (answerable only; none counts as a miss): `short_contains`, `short_em`,
  `short_f1`, `short_given`, `short_by_kind`; `sentences_per_answer` over answered ones.
- `ci`: 95 % Wilson intervals with their counts; `splits`: the figures per gold split.
- time: `latency_p50_ms`, `latency_p95_ms` of `answer()`, and `index_seconds`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError
from rag.eval.metrics import contains_answer
from rag.eval.output import add_notes, notes, summary_table, table, write_outputs
from rag.eval.scoring import (
    RETRIEVAL_DEPTH,
    Gold,
    QuestionResult,
    rank,
    relevant,
    retrieval,
    score,
    summarize,
)
from rag.options import SEARCH_MODES

if TYPE_CHECKING:
    from rag.embed.embedder import Embedder
    from rag.index.facade import Index
    from rag.ingest.chunking import ChunkSpec

__all__ = ["Gold", "QuestionResult", "add_notes", "default_index_dir", "evaluate", "load_gold",
           "notes", "open_index", "summarize", "summary_table", "table", "write_outputs"]


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
                        source=obj.get("source") or None,
                        question_date=_date(obj.get("question_date")),
                        evidence=obj.get("evidence") or None,
                        split=str(obj["split"]) if obj.get("split") else None)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{p}, line {n}: not a gold question ({e}); each line needs "
                             '{"id", "question", "answers": [...], "unanswerable"}') from e
        if not item.unanswerable and not item.answers:
            raise InputError(f"{p}, line {n}: answerable question with no answers; add "
                             'answers or mark it "unanswerable": true')
        items.append(item)
    return items


def _date(value: Any) -> str | None:
    """A gold `question_date` ("2023/06/01") as ISO; None when absent."""
    from rag.ingest.dates import as_of_date

    return as_of_date(str(value)) if value else None


def ablate_modes(gold: Sequence[Gold], index: Index) -> dict[str, dict[str, float]]:
    """Retrieval of the answerable questions with dense only, BM25 only, and hybrid search."""
    answerable = [g for g in gold if not g.unanswerable]
    table: dict[str, dict[str, float]] = {}
    for mode in SEARCH_MODES:
        ranks, strict = [], []
        for g in answerable:
            hits = index.search(g.question, k=RETRIEVAL_DEPTH, mode=mode)
            ranks.append(rank([relevant(h, g) for h in hits]))
            strict.append(rank([contains_answer(h.text, g.answers) for h in hits]))
        row = retrieval(ranks)
        row.update(retrieval(strict, "passage "))
        table[mode] = {k: round(v, 4) for k, v in row.items() if not k.endswith("@10")}
    return table


def evaluate(
    gold_path: str | os.PathLike[str] | Iterable[Gold], index: Index, *, k: int = 5,
    index_seconds: float | None = None, ablate: bool = False, progress: bool = False,
    with_features: bool = False,
) -> dict[str, Any]:
    """Run `answer()` on every gold question and score it; returns the JSON-ready result.

    `gold_path` is a gold JSONL file or `Gold` items. `k` is the number of passages the
    answer draws on (as in the chat). With `ablate`, the result's `ablations` compares
    dense, BM25 and hybrid retrieval. With `with_features`, each question also carries
    the refusal's inputs (the reader's best span score, the answering passage's cosine) for tuning
    `REFUSAL_LINE`/`MIN_COSINE`. A gold `question_date` is the question's as-of date.
    """
    from rag.answering.answer import answer, retrieve
    from rag.options import Filters

    gold = load_gold(gold_path) if isinstance(gold_path, (str, os.PathLike)) else list(gold_path)
    if not gold:
        raise InputError("the gold set is empty; add at least one question")
    index.search("warm up the model", k=1)  # the first query loads it: keep that out of latency
    results: list[QuestionResult] = []
    for n, g in enumerate(gold, start=1):
        # A question is asked at its date when the gold says so, else today.
        filters = Filters(as_of=g.question_date)
        t0 = time.perf_counter()
        ans = answer(g.question, index, k=k, filters=filters)
        latency_ms = (time.perf_counter() - t0) * 1000
        hits = retrieve(g.question, index, k=RETRIEVAL_DEPTH, filters=filters)
        features = _features(ans) if with_features else None
        results.append(score(g, ans, hits, latency_ms, features))
        if progress and (n % 25 == 0 or n == len(gold)):
            print(f"  {n}/{len(gold)} questions", file=sys.stderr, flush=True)
    result = summarize(results, index_seconds=index_seconds,
                       ablations=ablate_modes(gold, index) if ablate else None)
    return result


def _features(ans: Any) -> dict[str, float]:
    """The refusal's inputs for one answer: the reader's best span score (recovered from the
    confidence, the logistic of its margin over `REFUSAL_LINE`) and the first passage's
    cosine."""
    from rag.answering.extractive import REFUSAL_LINE

    c = min(max(float(ans.confidence), 1e-6), 1 - 1e-6)
    return {"reader_score": round(math.log(c / (1 - c)) + REFUSAL_LINE, 4),
            "cosine": round(float(ans.hits[0].dense), 4) if ans.hits else 0.0}


# -- the command --------------------------------------------------------------------------------
def default_index_dir(kind: str, data: str | os.PathLike[str]) -> Path:
    """A reusable index folder under the temp dir, keyed by the data's absolute path."""
    key = hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rag-{kind}-{key}"


def open_index(corpus: str | os.PathLike[str], path: str | os.PathLike[str], *,
               threads: int | None = None, bf16: bool | None = None,
               chunking: ChunkSpec | None = None, progress: bool = False,
               embedder: Embedder | None = None) -> tuple[Index, float]:
    """Build the index of `corpus` at `path`, or bring an existing one up to date.

    Returns the index and the seconds it took (small when nothing changed).
    """
    from rag.embed.embedder import SentenceTransformerEmbedder
    from rag.index.facade import Index

    t0 = time.perf_counter()
    idx = Index.open(path, chunking=chunking, embedder=embedder)
    emb = idx.embedder
    if isinstance(emb, SentenceTransformerEmbedder):  # not loaded yet: settings still apply
        emb.threads = threads or emb.threads
        emb.bf16 = emb.bf16 if bf16 is None else bf16
    report = idx.add([corpus], sync=True, progress=progress)
    for s in report.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    return idx, time.perf_counter() - t0


def main(args: argparse.Namespace) -> int:
    """`rag eval GOLD --corpus PATH [--index DIR] [-k N] [--json OUT] [--report DIR]`."""
    corpus = Path(args.corpus)
    if not corpus.exists():
        raise InputError(f"no corpus at {corpus}; give the folder or JSONL of the articles")
    gold = load_gold(args.gold)
    # An --index given is used as given (built or brought up to date there); without one,
    # eval builds its own in the temp dir, never touching the product's index/.
    index_dir = args.index or default_index_dir("eval", corpus)
    idx, seconds = open_index(corpus, index_dir, threads=getattr(args, "threads", None),
                              bf16=False if getattr(args, "no_bf16", False) else None,
                              progress=sys.stderr.isatty(),
                              embedder=getattr(args, "embedder", None))
    print(f"index {index_dir}: {idx.stats().articles} articles, {seconds:.1f} s")
    result = evaluate(gold, idx, k=args.k, index_seconds=round(seconds, 3),
                      ablate=bool(args.report), progress=sys.stderr.isatty(),
                      with_features=bool(getattr(args, "features", False)))
    print(summary_table(result))
    write_outputs(result, args.json_out, args.report, f"rag eval: {Path(args.gold).name} on "
                  f"{corpus.name or corpus}", notes(result))
    return 0
