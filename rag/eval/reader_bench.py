"""`rag bench reader`: the reader alone on SQuAD 2.0 dev, closed setting (gold paragraph given).

Scores with the official SQuAD 2.0 answer normalisation (lower case, no punctuation, no
articles, single spaces), EM and F1 overall, on answerable (HasAns) and unanswerable
(NoAns) questions, at the shipped threshold and at the best threshold on this data (the
latter is a ceiling, never a setting: the shipped threshold comes from held-out train).
"""

from __future__ import annotations

import json
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import InputError

DEFAULT_DEV = Path("../shared/datasets/squad/dev-v2.0.jsonl")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def official_normalize(s: str) -> str:
    """The official SQuAD evaluator's `normalize_answer`.

    >>> official_normalize("The  Eiffel-Tower!")
    'eiffeltower'
    """
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def official_f1(prediction: str, gold: str) -> float:
    p, g = official_normalize(prediction).split(), official_normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def official_scores(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) against the gold answers; no answers = unanswerable (gold is "")."""
    golds = [a for a in answers if official_normalize(a)] or [""]
    em = max(float(official_normalize(prediction) == official_normalize(g)) for g in golds)
    return em, max(official_f1(prediction, g) for g in golds)


@dataclass(frozen=True)
class Row:
    answers: tuple[str, ...]
    text: str  # the best span, whatever the threshold
    score: float  # its margin over "no answer" (-inf: nothing read)


def summarize(rows: Sequence[Row], threshold: float) -> dict[str, Any]:
    """EM/F1 (0-100) overall, HasAns and NoAns when answering above `threshold`."""
    groups: dict[str, list[tuple[float, float]]] = {"all": [], "has_ans": [], "no_ans": []}
    for r in rows:
        pred = r.text if r.score > threshold else ""
        em, f1 = official_scores(pred, r.answers)
        groups["all"].append((em, f1))
        groups["has_ans" if r.answers else "no_ans"].append((em, f1))
    out: dict[str, Any] = {"threshold": threshold}
    for name, vals in groups.items():
        n = len(vals)
        out[name] = {"n": n, "em": round(100 * sum(v[0] for v in vals) / n, 2) if n else None,
                     "f1": round(100 * sum(v[1] for v in vals) / n, 2) if n else None}
    return out


def best_threshold(rows: Sequence[Row]) -> float:
    """The threshold that maximises overall F1 on `rows` (the evaluator's `best_f1_thresh`)."""
    scored = sorted(rows, key=lambda r: -r.score)
    # Start refusing everything, then admit answers from the most confident down.
    f1s = [official_scores("", r.answers)[1] for r in scored]
    total = sum(f1s)
    best_total, best_t = total, float("inf")
    for i, r in enumerate(scored):
        total += official_scores(r.text, r.answers)[1] - f1s[i]
        nxt = scored[i + 1].score if i + 1 < len(scored) else float("-inf")
        if total > best_total and nxt < r.score:
            best_total, best_t = total, (r.score + nxt) / 2 if nxt > float("-inf") else r.score - 1
    return best_t


def bench_reader(dev: str | Path | None = None, *, limit: int = 0, model: str | None = None,
                 progress: bool = False) -> dict[str, Any]:
    from rag.answering.reader import Reader

    path = Path(dev) if dev else DEFAULT_DEV
    if not path.is_file():
        raise InputError(f"no SQuAD 2.0 dev file at {path}: pass --dev FILE (a SQuAD JSONL)")
    items = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    if limit:
        # Every k-th question, so a sample keeps the file's mix of articles and no-answers.
        step = max(len(items) // limit, 1)
        items = items[::step][:limit]
    reader = Reader.load(model)
    rows, ms, tokens, bad, encoder = [], [], [], 0, 0.0
    started = time.perf_counter()
    for n, item in enumerate(items, 1):
        t0 = time.perf_counter()
        reading = reader.read(item["question"], [item["context"]])
        ms.append(1000 * (time.perf_counter() - t0))
        tokens.append(reading.tokens)
        encoder += reading.encoder_ms
        bad += sum(s.text != item["context"][s.start:s.end] for s in reading.spans)
        top = reading.spans[0] if reading.spans else None
        rows.append(Row(tuple(item["answers"]["text"]), top.text if top else "",
                        top.score if top else float("-inf")))
        if progress and (n % 50 == 0 or n == len(items)):
            rate = n / (time.perf_counter() - started)
            print(f"\r{n}/{len(items)} questions, {rate:.1f}/s, ETA {(len(items) - n) / rate:.0f} s",
                  end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    total_ms = sum(ms)
    ms.sort()
    best = best_threshold(rows)
    return {"dataset": str(path), "questions": len(rows), "model": model or "shipped",
            "shipped": summarize(rows, reader.threshold), "best": summarize(rows, best),
            "spans_not_their_slice": bad,
            "latency_ms": {"p50": round(ms[len(ms) // 2], 1), "p95": round(ms[int(len(ms) * .95)], 1)},
            "tokens_per_question": round(sum(tokens) / len(tokens), 1),
            "beyond_encoder": round(1 - encoder / total_ms, 3) if total_ms else 0.0}


def print_reader(result: dict[str, Any]) -> None:
    print(f"SQuAD 2.0 closed setting, {result['questions']} questions ({result['dataset']})")
    for key, label in (("shipped", "shipped threshold"), ("best", "best threshold (ceiling)")):
        r = result[key]
        print(f"  {label} {r['threshold']:.2f}: EM {r['all']['em']} F1 {r['all']['f1']} | "
              f"HasAns F1 {r['has_ans']['f1']} | NoAns {r['no_ans']['f1']}")
    print(f"  latency p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms, "
          f"{result['tokens_per_question']} tokens read per question, "
          f"{100 * result['beyond_encoder']:.0f} % of it outside the encoder; "
          f"spans not equal to their passage slice: {result['spans_not_their_slice']}")
