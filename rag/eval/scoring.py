"""Scoring one answer against its gold question, and the figures over many (`summarize`).

Strict variants need the gold `evidence` sentence: a passage or quote counts only when it
holds a gold answer string *and* most of the evidence sentence's content words (a plain
string such as "Russia" occurs in many articles). Rates come with their 95 % Wilson
interval and count in `ci`; `splits` repeats the figures for each gold `split`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.eval.metrics import (
    abstention_scores,
    best_threshold,
    contains_answer,
    exact_match,
    hit_at_k,
    percentile,
    reciprocal_rank,
    shares_evidence,
    threshold_sweep,
    token_f1,
    wilson,
)
from rag.markers import strip_markers

if TYPE_CHECKING:
    from rag.results import Answer, Hit

RETRIEVAL_DEPTH = 10


@dataclass(frozen=True)
class Gold:
    """One gold question. `answers` are alternatives; an unanswerable question has none.

    `question_date` (ISO) is the as-of date the question is asked at; `evidence` is a
    sentence that states the answer (for the strict figures); `split` names a subset."""

    id: str
    question: str
    answers: tuple[str, ...]
    unanswerable: bool
    source: str | None = None
    question_date: str | None = None
    evidence: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class QuestionResult:
    """How one question went; ranks are 1-based, None when no passage in the top 10 hit."""

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
    split: str | None = None
    strict_rank: int | None = None  # passage holds the answer and the evidence's words
    strict: bool | None = None  # None without gold evidence
    short: str | None = None
    short_contains: bool = False
    short_em: float = 0.0
    short_f1: float = 0.0
    kind: str | None = None  # what the question asks for (rag.answering.short.asked_kind)
    sentences: int = 0
    features: dict[str, float] = field(default_factory=dict)


def _from_source(article_id: str, path: str | None, source: str | None) -> bool:
    if not source:
        return False
    return source == article_id or (path is not None and Path(path).name == source)


def relevant(hit: Hit, gold: Gold) -> bool:
    """A passage that holds a gold answer string or comes from the gold source article."""
    return contains_answer(hit.text, gold.answers) or _from_source(hit.article_id, hit.path,
                                                                    gold.source)


def _strict(text: str, gold: Gold) -> bool:
    return contains_answer(text, gold.answers) and shares_evidence(text, gold.evidence or "")


def rank(flags: Sequence[bool]) -> int | None:
    """The 1-based position of the first True, or None."""
    return next((i for i, f in enumerate(flags, start=1) if f), None)


def score(gold: Gold, ans: Answer, hits: Sequence[Hit], latency_ms: float,
          features: dict[str, float] | None = None) -> QuestionResult:
    """One answer scored against its gold question."""
    from rag.eval.kinds import asked_kind

    text = "" if ans.abstained else strip_markers(ans.text).strip()
    f1 = float(ans.abstained) if gold.unanswerable else (
        token_f1(text, gold.answers) if text else 0.0)
    cites = [] if ans.abstained else list(ans.citations)
    short = None if ans.abstained or ans.short is None else ans.short.text
    return QuestionResult(
        id=gold.id, question=gold.question, answer=ans.text, abstained=ans.abstained,
        unanswerable=gold.unanswerable, confidence=float(ans.confidence),
        latency_ms=round(latency_ms, 2),
        hit_rank=rank([relevant(h, gold) for h in hits]),
        passage_rank=rank([contains_answer(h.text, gold.answers) for h in hits]),
        contains=bool(text) and contains_answer(text, gold.answers),
        f1=round(f1, 4),
        citations=[{"n": c.n, "article_id": c.article_id, "quote": c.quote, "start": c.start,
                    "end": c.end} for c in cites],
        good_citations=sum(contains_answer(c.quote, gold.answers)
                           or _from_source(c.article_id, c.path, gold.source) for c in cites),
        passage_citations=sum(contains_answer(c.quote, gold.answers) for c in cites),
        split=gold.split,
        strict_rank=rank([_strict(h.text, gold) for h in hits]) if gold.evidence else None,
        strict=(any(_strict(c.quote, gold) for c in cites) if gold.evidence else None),
        short=short,
        short_contains=bool(short) and contains_answer(short or "", gold.answers),
        short_em=exact_match(short or "", gold.answers) if short else 0.0,
        short_f1=round(token_f1(short, gold.answers), 4) if short and gold.answers else 0.0,
        kind=asked_kind(gold.question),
        sentences=len(cites),
        features=dict(features or {}),
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def retrieval(ranks: Sequence[int | None], prefix: str = "") -> dict[str, float]:
    """hit@1/5/10 and MRR from first-relevant ranks."""
    flags = [[r is not None and r == i for i in range(1, RETRIEVAL_DEPTH + 1)] for r in ranks]
    out = {f"{prefix}hit@{k}": _mean([hit_at_k(f, k) for f in flags]) for k in (1, 5, 10)}
    out[f"{prefix}mrr"] = _mean([reciprocal_rank(f) for f in flags])
    return out


# Rates reported with a Wilson interval: (key, over answerable / unanswerable / all).
_RATES = (("hit@1", "a"), ("hit@5", "a"), ("hit@10", "a"), ("answer_contains", "a"),
          ("strict_contains", "a"), ("short_contains", "a"), ("abstain_recall", "u"),
          ("false_abstention", "a"))


def _figures(results: Sequence[QuestionResult]) -> dict[str, Any]:
    answerable = [r for r in results if not r.unanswerable]
    unanswerable = [r for r in results if r.unanswerable]
    precision, recall, false_abstention = abstention_scores(
        [r.abstained for r in results], [r.unanswerable for r in results])
    cites = sum(len(r.citations) for r in answerable)
    answered = [r for r in answerable if not r.abstained]
    evidenced = [r for r in answerable if r.strict is not None]
    out: dict[str, Any] = {
        "n": len(results),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        **retrieval([r.hit_rank for r in answerable]),
        "answer_contains": _mean([float(r.contains) for r in answerable]),
        "token_f1": _mean([r.f1 for r in results]),
        # No citations made, none wrong: 1.0, as rag.eval.metrics scores empty denominators.
        "citation_precision": sum(r.good_citations for r in answerable) / cites if cites else 1.0,
        "abstain_precision": precision,
        "abstain_recall": recall,
        "false_abstention": false_abstention,
        # Over ALL answerable questions: no short answer counts as a miss.
        "short_contains": _mean([float(r.short_contains) for r in answerable]),
        "short_em": _mean([r.short_em for r in answerable]),
        "short_f1": _mean([r.short_f1 for r in answerable]),
        "short_given": _mean([float(r.short is not None) for r in answerable]),
        "sentences_per_answer": _mean([float(r.sentences) for r in answered]),
        "latency_p50_ms": percentile([r.latency_ms for r in results], 50),
        "latency_p95_ms": percentile([r.latency_ms for r in results], 95),
    }
    if evidenced:
        out["strict_contains"] = _mean([float(bool(r.strict)) for r in evidenced])
        strict = retrieval([r.strict_rank for r in evidenced])
        out.update({f"strict {k}": v for k, v in strict.items()})
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    ci: dict[str, list[float]] = {}
    for key, over in _RATES:
        if key not in out:
            continue
        n = len(evidenced) if key == "strict_contains" else (
            len(answerable) if over == "a" else len(unanswerable))
        if n:
            lo, hi = wilson(out[key] * n, n)
            ci[key] = [round(lo, 3), round(hi, 3), n]
    out["ci"] = ci
    return out


def summarize(results: Sequence[QuestionResult], *, index_seconds: float | None = None,
              ablations: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The metrics of `evaluate()` from per-question results (and per gold split)."""
    answerable = [r for r in results if not r.unanswerable]
    unanswerable = [r for r in results if r.unanswerable]
    out = _figures(results)
    out["index_seconds"] = index_seconds
    passage = retrieval([r.passage_rank for r in answerable])
    cites = sum(len(r.citations) for r in answerable)
    passage["citation_precision"] = (sum(r.passage_citations for r in answerable) / cites
                                     if cites else 1.0)
    out["passage"] = {k: round(v, 4) for k, v in passage.items()}
    out["hit_curve"] = [
        [k, round(_mean([float(r.hit_rank is not None and r.hit_rank <= k)
                         for r in answerable]), 4)]
        for k in range(1, RETRIEVAL_DEPTH + 1)]
    conf_a = [r.confidence for r in answerable]
    conf_u = [r.confidence for r in unanswerable]
    sweep = threshold_sweep(conf_a, conf_u)
    out["sweep"] = [{f: round(v, 4) for f, v in p._asdict().items()} for p in sweep]
    out["threshold"] = round(best_threshold(conf_a, conf_u), 4) if sweep else None
    kinds: dict[str, list[QuestionResult]] = {}
    for r in answerable:
        kinds.setdefault(r.kind or "none", []).append(r)
    out["short_by_kind"] = {k: {"n": len(v), "short_given": round(_mean(
        [float(r.short is not None) for r in v]), 4), "short_contains": round(_mean(
            [float(r.short_contains) for r in v]), 4), "short_f1": round(_mean(
                [r.short_f1 for r in v]), 4)} for k, v in sorted(kinds.items())}
    splits = sorted({r.split for r in results if r.split})
    if splits:
        out["splits"] = {s: _figures([r for r in results if r.split == s]) for s in splits}
    if ablations:
        out["ablations"] = ablations
    out["questions"] = [
        {k: v for k, v in asdict(r).items() if k not in ("good_citations", "passage_citations")}
        for r in results
    ]
    return out
