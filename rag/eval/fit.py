"""Fit the abstention model (`rag.answering.abstain`) from eval results with features.

    rag eval ../shared/datasets/news-dev/gold.jsonl --corpus ... --features --json news.json
    python -m rag.eval.fit squad.json --news news.json --squad-ids eval/squad_fit_ids.txt

The fitting set is the questions of the SQuAD result whose id is listed in `--squad-ids`
plus every question of the news result whose `split` is "tune"; the rest is never seen
here. The threshold is chosen on the news tune questions (on the SQuAD ones without
`--news`).
A plain numpy logistic regression (standardised features, L2, Newton steps) prints the
constants to paste into `abstain.py`, and the threshold: the highest abstention recall
on the fitting set whose false abstention stays within `--max-false`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.eval.squad_short import FIT_IDS, read_ids

L2 = 1.0  # ridge on the standardised weights: ~400 questions, 10 features
NEWTON_STEPS = 50


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (bias not penalised).

    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> w, b = fit_logistic(x, y, l2=0.1)
    >>> bool(w[0] > 0) and bool(-b / w[0] > 1.0) and bool(-b / w[0] < 2.0)
    True
    """
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -50, 50)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def rows(result: dict[str, Any], keep: Any) -> list[dict[str, Any]]:
    """The questions of an eval result that `keep(question)` accepts and that have features."""
    return [q for q in result["questions"] if q.get("features") and keep(q)]


def design(questions: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    x = np.array([[float(q["features"][f]) for f in names] for q in questions])
    y = np.array([1.0 if q["unanswerable"] else 0.0 for q in questions])
    return x, y


def choose_threshold(p: np.ndarray, y: np.ndarray, max_false: float) -> float:
    """The lowest P(unanswerable) cut (most recall) whose false abstention <= max_false."""
    answerable = max(int((y == 0).sum()), 1)
    for t in sorted(set(np.round(p, 4))):
        false = float(((p >= t) & (y == 0)).sum()) / answerable
        if false <= max_false:
            return float(t)
    return 1.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag.eval.fit", description=__doc__)
    ap.add_argument("squad", help="a --features result on SQuAD2-500 (rag.eval.fit's input)")
    ap.add_argument("--news", help="the same on news-dev (its tune split is fitted on)")
    ap.add_argument("--squad-ids", default=str(FIT_IDS))
    ap.add_argument("--max-false", type=float, default=0.08,
                    help="false abstention allowed on the fitting set (below the 0.10 target)")
    ap.add_argument("--l2", type=float, default=L2)
    args = ap.parse_args(argv)
    squad = json.loads(Path(args.squad).read_text(encoding="utf-8"))
    news = (json.loads(Path(args.news).read_text(encoding="utf-8")) if args.news
            else {"questions": []})
    names = squad["abstain_features"]
    ids = read_ids(Path(args.squad_ids))
    fit_news = rows(news, lambda q: q.get("split") == "tune")
    fit_squad = rows(squad, lambda q: q["id"] in ids)
    x, y = design(fit_news + fit_squad, names)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    w, b = fit_logistic((x - mean) / scale, y, args.l2)
    xn, yn = design(fit_news or fit_squad, names)
    p_news = 1.0 / (1.0 + np.exp(-(((xn - mean) / scale) @ w + b)))
    threshold = choose_threshold(p_news, yn, args.max_false)
    n_news_u = int(sum(q["unanswerable"] for q in fit_news))
    print(f"# fitted on {len(fit_news)} news-dev tune ({n_news_u} unanswerable) + "
          f"{len(fit_squad)} SQuAD ({int(y.sum()) - n_news_u} unanswerable), L2 {args.l2}")
    print(f"FEATURES = {tuple(names)!r}")
    print(f"MEANS = {tuple(round(float(v), 4) for v in mean)!r}")
    print(f"SCALES = {tuple(round(float(v), 4) for v in scale)!r}")
    print(f"WEIGHTS = {tuple(round(float(v), 4) for v in w)!r}")
    print(f"BIAS = {round(b, 4)!r}")
    on = "news-dev tune" if fit_news else "the SQuAD fitting half"
    print(f"ABSTAIN_AT = {round(threshold, 4)!r}  # {on}: false abstention <= {args.max_false}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
