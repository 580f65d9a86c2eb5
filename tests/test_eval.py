"""The eval command and the benchmarks: metrics computed end to end on real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.eval.benchmarks import bench_beir, bench_squad, run_bench, squad_corpus
from rag.eval.runner import load_gold

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"
SEEDS = ROOT / "seeds"
DATASETS = ROOT.parent / "shared" / "datasets"
SQUAD = DATASETS / "squad2-500" / "qa.jsonl"

RATES = ("hit@1", "hit@5", "hit@10", "mrr", "answer_contains", "token_f1", "citation_precision",
         "abstain_precision", "abstain_recall", "false_abstention")
KEYS = ("n", *RATES, "latency_p50_ms", "latency_p95_ms", "index_seconds", "questions", "sweep",
        "threshold", "hit_curve")
QUESTION_KEYS = {"id", "question", "answer", "abstained", "unanswerable", "confidence",
                 "latency_ms", "hit_rank", "contains", "f1", "citations"}


def check_result(result: dict, n_questions: int) -> None:
    """Every metric is there and in range; one entry per gold question."""
    for key in KEYS:
        assert key in result, key
    for key in RATES:
        assert 0.0 <= result[key] <= 1.0, (key, result[key])
    assert result["n"] == n_questions == len(result["questions"])
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]
    assert result["index_seconds"] >= 0
    assert result["sweep"] and result["threshold"] is not None
    assert [k for k, _ in result["hit_curve"]] == list(range(1, 11))
    for q in result["questions"]:
        assert QUESTION_KEYS <= set(q)
        assert 0.0 <= q["f1"] <= 1.0
        assert q["hit_rank"] is None or 1 <= q["hit_rank"] <= 10
        for c in q["citations"]:
            assert {"n", "article_id", "quote", "start", "end"} <= set(c)


# -- fast ----------------------------------------------------------------------------------------
def test_gold_file_is_valid() -> None:
    gold = load_gold(GOLD)
    assert len(gold) >= 30
    assert sum(g.unanswerable for g in gold) >= 6
    assert len({g.id for g in gold}) == len(gold)


def test_gold_rejects_answerable_without_answers(tmp_path: Path) -> None:
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"id": "a", "question": "Who?", "answers": [], "unanswerable": false}\n')
    with pytest.raises(InputError, match="line 1"):
        load_gold(bad)


def test_squad_corpus_dedups_paragraphs() -> None:
    rows = [
        {"id": "1", "question": "Who ran?", "context": "Ann ran.", "answers": ["Ann", "Ann"],
         "is_impossible": False},
        {"id": "2", "question": "Who swam?", "context": "Ann ran.", "answers": [""],
         "is_impossible": True},
        {"id": "3", "question": "Who sat?", "context": "Bob sat.", "answers": ["Bob"],
         "is_impossible": False},
    ]
    articles, gold = squad_corpus(rows)
    assert [a["id"] for a in articles] == ["squad-1", "squad-2"]
    assert [g.source for g in gold] == ["squad-1", "squad-1", "squad-2"]
    assert gold[1].unanswerable and gold[1].answers == ()


@pytest.mark.parametrize("suite", ["beir", "squad"])
def test_bench_refuses_a_data_path_that_does_not_exist(tmp_path: Path, suite: str) -> None:
    with pytest.raises(InputError, match="not found"):
        run_bench(suite, tmp_path / "nowhere")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    out = subprocess.run([sys.executable, "-m", "rag", "bench", suite, str(tmp_path / "nowhere")],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "not found" in out.stderr


@pytest.mark.parametrize("suite", ["beir", "squad"])
def test_bench_skips_when_the_default_data_is_absent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        suite: str) -> None:
    monkeypatch.chdir(tmp_path)  # ../shared/datasets is not beside this folder
    assert run_bench(suite) is None  # type: ignore[arg-type]
    assert "skipped:" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_python_m_eval_is_rag_eval() -> None:
    out = subprocess.run([sys.executable, "-m", "eval", "--help"], check=False, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--corpus" in out.stdout and "--report" in out.stdout


# -- the real model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    """`rag eval eval/gold/seeds.jsonl --corpus seeds/` with everything under a tmp folder."""
    from rag.cli import main

    tmp = tmp_path_factory.mktemp("eval")
    index, out, report = tmp / "index", tmp / "out.json", tmp / "report"
    code = main(["eval", str(GOLD), "--corpus", str(SEEDS), "--index", str(index),
                 "--json", str(out), "--report", str(report), "--threads", "1"])
    assert code == 0
    return json.loads(out.read_text()), index, report


@pytest.mark.slow
def test_eval_on_seeds_computes_every_metric(seeds_eval: tuple[dict, Path, Path]) -> None:
    result, _, report = seeds_eval
    gold_lines = [line for line in GOLD.read_text().splitlines() if line.strip()]
    check_result(result, len(gold_lines))
    assert {g["id"] for g in map(json.loads, gold_lines)} == {q["id"] for q in result["questions"]}
    assert set(result["ablations"]) == {"dense", "lexical", "hybrid"}
    text = (report / "report.md").read_text()
    assert "answerable questions only" in text
    for png in ("hit_at_k.png", "confidence.png", "abstention.png", "latency.png"):
        assert (report / png).stat().st_size > 1000
        assert f"]({png})" in text


# The README's seed-gold figures with the shipped (stage-2) reader (hit@5 1.0, answer
# contains 0.674, short answer contains 0.435, citation precision 1.0, abstention recall
# 0.250 at false abstention 0.109), less a margin of about two questions: a change that
# makes the answers worse fails here, not only in a benchmark nobody re-runs.
SEED_FLOORS = {"hit@5": 0.95, "answer_contains": 0.62, "short_contains": 0.39,
               "citation_precision": 0.95, "abstain_recall": 0.16}


@pytest.mark.slow
def test_eval_on_seeds_meets_the_readme_figures(seeds_eval: tuple[dict, Path, Path]) -> None:
    result, _, _ = seeds_eval
    for key, floor in SEED_FLOORS.items():
        assert result[key] >= floor, (key, result[key], floor)
    assert result["false_abstention"] <= 0.16


@pytest.mark.slow
def test_eval_citations_quote_the_article(seeds_eval: tuple[dict, Path, Path]) -> None:
    from rag import Index

    result, index, _ = seeds_eval
    idx = Index.load(index)
    answered = [q for q in result["questions"] if not q["abstained"]]
    assert answered
    for q in answered:
        assert q["citations"], q["id"]
        for c in q["citations"]:
            assert idx.article(c["article_id"]).text[c["start"]:c["end"]] == c["quote"]
    idx.close()


@pytest.mark.slow
def test_eval_known_answers(seeds_eval: tuple[dict, Path, Path]) -> None:
    from rag import Index, answer

    result, index, _ = seeds_eval
    idx = Index.load(index)
    ans = answer("How many missiles were intercepted?", idx)
    assert not ans.abstained and "two" in ans.text.lower()
    assert any("two were intercepted" in c.quote for c in ans.citations)
    by_question = {q["question"]: q for q in result["questions"]}
    assert by_question["What did the French president say about the strikes?"]["abstained"]
    idx.close()


@pytest.mark.slow
def test_bench_beir_on_a_tiny_dataset(tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    docs = {"d1": "Aspirin lowers the risk of heart attack.", "d2": "Cats sleep most of the day.",
            "d3": "Vitamin D deficiency is linked to bone loss."}
    (data / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (data / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "aspirin and heart attacks"}) + "\n"
        + json.dumps({"_id": "q2", "text": "vitamin D and bones"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    result = bench_beir(data, tmp_path / "index", ablate=True, threads=1)
    assert result["n_queries"] == 2 and result["n_docs"] == 3
    assert result["ndcg@10"] == result["recall@100"] == result["mrr@10"] == 1.0
    assert set(result["ablations"]) == {"dense", "lexical", "hybrid"}


@pytest.mark.slow
@pytest.mark.skipif(not SQUAD.is_file(), reason=f"{SQUAD} not found (../shared is only in dev)")
def test_bench_squad_slice(tmp_path: Path) -> None:
    result = bench_squad(SQUAD, tmp_path / "index", limit=40, threads=1)
    check_result(result, 40)
    assert 0 < result["n_paragraphs"] <= 40
    assert (tmp_path / "index-corpus.jsonl").is_file()
