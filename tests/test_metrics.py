"""Scoring functions, the report writer, and the seed gold set."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.eval.metrics import (
    abstention_scores,
    best_threshold,
    contains_answer,
    hit_at_k,
    ndcg_at_k,
    normalize,
    percentile,
    recall_at_k,
    reciprocal_rank,
    threshold_sweep,
    token_f1,
)
from rag.eval.report import write_report

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"
SEEDS = ROOT / "seeds"
REQUIRED_KEYS = {"id", "question", "answers", "unanswerable", "source"}


# --- normalize / contains_answer -------------------------------------------------


def test_normalize_folds_case_quotes_dashes_and_whitespace():
    assert normalize("  The “FSB’s”\t U.S.-backed\n\n plan. ") == "the fsb u.s backed plan"
    assert normalize("ＦＳＢ") == "fsb"  # NFKC folds full-width letters
    assert normalize("1,000 days — of war") == "1,000 days of war"
    assert normalize("...") == ""


def test_contains_answer_with_curly_quotes_and_extra_whitespace():
    text = "The FSB said the diplomat was involved in “intelligence  and\nsubversive activities.”"
    assert contains_answer(text, ['"intelligence and subversive activities"'])
    assert contains_answer("Russia’s defence   ministry said", ["Russia's defence ministry"])
    assert contains_answer("RUSSIA'S DEFENCE MINISTRY", ["russia’s defence ministry"])


def test_contains_answer_matches_whole_tokens_only():
    assert not contains_answer("The network was down.", ["two"])
    assert not contains_answer("two weeks", ["two week"])
    assert contains_answer("US-provided missiles", ["US"])
    assert contains_answer("a city of about 18,000 people", ["18,000"])
    assert not contains_answer("a city of about 18,000 people", ["18"])


def test_contains_answer_needs_a_non_empty_answer():
    assert not contains_answer("anything at all", [])
    assert not contains_answer("anything at all", ["", " . "])
    assert contains_answer("Karachev", ["", "karachev"])


# --- token_f1 (SQuAD semantics) --------------------------------------------------


def test_token_f1_ignores_articles_case_and_punctuation():
    assert token_f1("The Federal Security Service.", ["federal security service"]) == 1.0
    assert token_f1("U.S.", ["US"]) == 1.0


def test_token_f1_partial_overlap():
    # pred 4 tokens, gold 2, overlap 2: P = 1/2, R = 1, F1 = 2/3.
    assert token_f1("Vladimir Putin said so", ["Vladimir Putin"]) == pytest.approx(2 / 3)
    # Counts are clipped: "two two" vs "two weeks" overlaps once. P = R = 1/2.
    assert token_f1("two two", ["two weeks"]) == pytest.approx(0.5)
    assert token_f1("Moscow", ["Kyiv"]) == 0.0


def test_token_f1_takes_the_best_gold_answer():
    assert token_f1("Putin", ["Vladimir Putin", "Putin"]) == 1.0
    assert token_f1("Putin", ["Vladimir Putin"]) == pytest.approx(2 / 3)


def test_token_f1_empty_gold_rewards_only_an_empty_prediction():
    assert token_f1("", []) == 1.0
    assert token_f1("  the. ", []) == 1.0  # nothing left after normalisation
    assert token_f1("Lockheed Martin", []) == 0.0
    assert token_f1("", ["Karachev"]) == 0.0
    assert token_f1("", ["the"]) == 1.0  # SQuAD: both empty after normalisation


# --- retrieval -------------------------------------------------------------------


def test_hit_at_k_and_reciprocal_rank():
    ranked = [False, False, True, True]
    assert hit_at_k(ranked, 1) == 0.0
    assert hit_at_k(ranked, 2) == 0.0
    assert hit_at_k(ranked, 3) == 1.0
    assert hit_at_k(ranked, 100) == 1.0
    assert hit_at_k([], 5) == 0.0
    assert reciprocal_rank(ranked) == pytest.approx(1 / 3)
    assert reciprocal_rank([True]) == 1.0
    assert reciprocal_rank([False, False]) == 0.0
    assert reciprocal_rank([]) == 0.0
    with pytest.raises(ValueError):
        hit_at_k(ranked, 0)


def test_ndcg_hand_computed():
    relevance = {"a": 1, "c": 2, "d": 1, "z": 0}
    ranked = ["a", "b", "c"]
    # DCG@3 = 1/log2(2) + 0/log2(3) + 2/log2(4) = 1 + 0 + 1 = 2
    # IDCG@3 from the qrels' gains [2, 1, 1] = 2/1 + 1/log2(3) + 1/2
    idcg = 2 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(ranked, relevance, k=3) == pytest.approx(2 / idcg)
    assert ndcg_at_k(ranked, relevance, k=3) == pytest.approx(0.638787, abs=1e-6)
    # @1: DCG = 1, IDCG = 2.
    assert ndcg_at_k(ranked, relevance, k=1) == pytest.approx(0.5)
    # Ideal order scores 1; default k=10.
    assert ndcg_at_k(["c", "a", "d"], relevance) == pytest.approx(1.0)


def test_ndcg_edge_cases():
    assert ndcg_at_k(["a", "b"], {}, k=10) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 0}, k=10) == 0.0
    assert ndcg_at_k([], {"a": 1}, k=10) == 0.0
    # A repeated id earns its gain once, at its first rank.
    assert ndcg_at_k(["a", "a"], {"a": 1, "b": 1}, k=2) == pytest.approx(
        1 / (1 + 1 / math.log2(3))
    )
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a": 1}, k=0)


def test_recall_at_k():
    relevance = {"a": 1, "b": 2, "c": 1, "n": 0}
    assert recall_at_k(["a", "x", "b"], relevance, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "x", "b"], relevance, k=3) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "a", "a"], relevance, k=3) == pytest.approx(1 / 3)
    assert recall_at_k(["n"], relevance, k=1) == 0.0
    assert recall_at_k(["a"], {}, k=1) == 0.0


# --- percentile ------------------------------------------------------------------


@pytest.mark.parametrize("p", [0, 5, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(p):
    values = [12.0, 3.5, 7.0, 100.0, 42.0, 8.25, 8.25]
    assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_percentile_rejects_bad_input():
    assert percentile([7], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


# --- abstention ------------------------------------------------------------------


def test_abstention_scores_counts():
    # abstained on 3: 2 unanswerable (of 3), 1 answerable (of 3)
    pred = [True, True, True, False, False, False]
    gold = [True, True, False, True, False, False]
    precision, recall, false_abstention = abstention_scores(pred, gold)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert false_abstention == pytest.approx(1 / 3)


def test_abstention_scores_zero_division():
    # Never abstains: no wrong abstention (precision 1) but nothing caught.
    assert abstention_scores([False, False], [True, False]) == (1.0, 0.0, 0.0)
    # No unanswerable questions and no abstentions: nothing to miss.
    assert abstention_scores([False, False], [False, False]) == (1.0, 1.0, 0.0)
    # Only unanswerable questions, all abstained on: no answerable to wrong.
    assert abstention_scores([True, True], [True, True]) == (1.0, 1.0, 0.0)
    # Only answerable questions, all abstained on.
    assert abstention_scores([True, True], [False, False]) == (0.0, 1.0, 1.0)
    assert abstention_scores([], []) == (1.0, 1.0, 0.0)
    for score in abstention_scores([True, False, False], [False, False, False]):
        assert not math.isnan(score)
    with pytest.raises(ValueError):
        abstention_scores([True], [True, False])


def test_sweep_picks_the_separating_threshold():
    answerable = [0.62, 0.7, 0.9, 0.95]
    unanswerable = [0.1, 0.3, 0.41]
    t = best_threshold(answerable, unanswerable)
    assert 0.41 < t < 0.62
    assert t == pytest.approx((0.41 + 0.62) / 2)
    decisions = [s < t for s in answerable + unanswerable]
    assert decisions == [False] * 4 + [True] * 3

    sweep = threshold_sweep(answerable, unanswerable)
    thresholds = [p.threshold for p in sweep]
    assert thresholds == sorted(thresholds)
    best = max(sweep, key=lambda p: p.accuracy)
    assert best.threshold == t
    assert tuple(best)[1:] == (1.0, 1.0, 0.0, 1.0)
    # The ends: abstain on nothing, then on everything.
    assert sweep[0].abstain_recall == 0.0 and sweep[0].false_abstention == 0.0
    assert sweep[0].accuracy == pytest.approx(4 / 7)
    assert sweep[-1].abstain_recall == 1.0 and sweep[-1].false_abstention == 1.0
    assert sweep[-1].accuracy == pytest.approx(3 / 7)
    assert all(s < sweep[-1].threshold for s in answerable + unanswerable)


def test_sweep_ties_prefer_answering_and_empty_input():
    # Overlapping: thresholds 0.45 and 0.65 both decide 3 of 4 right; take the lower.
    t = best_threshold([0.5, 0.8], [0.4, 0.6])
    assert t == pytest.approx(0.45)
    # Only answerable questions: best is to never abstain.
    assert best_threshold([0.2, 0.9], []) == 0.2
    assert threshold_sweep([], []) == []
    with pytest.raises(ValueError):
        best_threshold([], [])


# --- report ----------------------------------------------------------------------


def _result() -> dict:
    questions = []
    for i in range(20):
        unanswerable = i % 4 == 0
        questions.append(
            {
                "id": f"seeds-{i:03d}",
                "question": f"Question {i} | with a pipe?",
                "answer": "" if unanswerable else f"Answer {i}",
                "abstained": unanswerable,
                "unanswerable": unanswerable,
                "confidence": 0.1 + 0.02 * i if unanswerable else 0.6 + 0.015 * i,
                "latency_ms": 100.0 + 13 * i,
                "hit_rank": None if unanswerable else 1 + i % 3,
                "contains": not unanswerable,
                "f1": 0.0 if unanswerable else 0.8,
                "citations": [],
            }
        )
    answerable = [q["confidence"] for q in questions if not q["unanswerable"]]
    unanswerable = [q["confidence"] for q in questions if q["unanswerable"]]
    return {
        "n": 20,
        "hit@1": 0.4,
        "hit@5": 0.75,
        "hit@10": 0.75,
        "mrr": 0.55,
        "answer_contains": 0.75,
        "token_f1": 0.6,
        "citation_precision": 0.9,
        "abstain_precision": 1.0,
        "abstain_recall": 1.0,
        "false_abstention": 0.0,
        "latency_p50_ms": 220.0,
        "latency_p95_ms": 340.0,
        "index_seconds": 3.2,
        "threshold": best_threshold(answerable, unanswerable),
        "sweep": [list(p) for p in threshold_sweep(answerable, unanswerable)],
        "ablations": {
            "dense only": {"hit@5": 0.6, "mrr": 0.4},
            "hybrid": {"hit@5": 0.75, "mrr": 0.55},
        },
        "questions": questions,
    }


PNGS = ("hit_at_k.png", "confidence.png", "abstention.png", "latency.png", "ablations.png")


def test_write_report_writes_markdown_and_plots(tmp_path):
    out = write_report(_result(), tmp_path / "run", "Seed eval")
    assert out == tmp_path / "run" / "report.md"
    markdown = out.read_text(encoding="utf-8")
    assert markdown.startswith("# Seed eval\n")
    assert "| hit@5 | 0.750 |" in markdown
    assert "| latency p95 (ms) | 340.0 |" in markdown
    assert "Question 3 \\| with a pipe?" in markdown  # pipes escaped in table cells
    assert "| dense only |" in markdown
    for name in PNGS:
        png = out.parent / name
        assert f"]({name})" in markdown
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_copes_with_missing_keys(tmp_path):
    out = write_report({}, tmp_path, "Empty")
    assert out.read_text(encoding="utf-8") == "# Empty\n"
    assert not list(tmp_path.glob("*.png"))

    sparse = {
        "n": 2,
        "hit@1": None,
        "mrr": 0.5,
        "questions": [
            {"id": "q1", "question": "?", "confidence": None, "latency_ms": 12.0},
            {"id": "q2", "question": "?", "confidence": 0.5, "unanswerable": True},
        ],
    }
    out = write_report(sparse, tmp_path / "sparse", "Sparse")
    markdown = out.read_text(encoding="utf-8")
    assert "| MRR | 0.500 |" in markdown and "hit@1 |" not in markdown
    made = {p.name for p in out.parent.glob("*.png")}
    assert made == {"confidence.png", "latency.png"}


def test_write_report_accepts_a_hit_curve(tmp_path):
    out = write_report({"hit_curve": [0.3, 0.5, 0.6, 0.7]}, tmp_path, "Curve")
    assert (tmp_path / "hit_at_k.png").stat().st_size > 1000
    assert "](hit_at_k.png)" in out.read_text(encoding="utf-8")


def test_importing_metrics_and_report_does_not_import_matplotlib():
    code = "import sys, rag.eval.metrics, rag.eval.report; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


# --- gold set --------------------------------------------------------------------


def _gold() -> list[dict]:
    lines = GOLD.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_gold_file_is_well_formed():
    rows = _gold()
    for row in rows:
        assert REQUIRED_KEYS <= row.keys(), row
        assert isinstance(row["question"], str) and row["question"].strip()
        assert isinstance(row["answers"], list)
        assert all(isinstance(a, str) and a.strip() for a in row["answers"])
        assert isinstance(row["unanswerable"], bool)
        assert (SEEDS / row["source"]).is_file()
        if row["unanswerable"]:
            assert row["answers"] == [], row["id"]
        else:
            assert row["answers"], row["id"]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    assert len(rows) >= 30
    assert sum(row["unanswerable"] for row in rows) >= 6


def test_gold_answers_occur_in_the_seed_article():
    missing = [
        (row["id"], answer)
        for row in _gold()
        if not row["unanswerable"]
        for answer in row["answers"]
        if not contains_answer((SEEDS / row["source"]).read_text(encoding="utf-8"), [answer])
    ]
    assert missing == []
