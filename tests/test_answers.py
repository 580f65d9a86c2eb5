"""The answer a journalist reads: the short answer first, one sentence that holds it,
"not in the articles" when the article does not say, and answers as of a date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import Filters, Index, answer
from rag.answering.answer import prefer_recent
from rag.answering.short import asked_kind, best_span, score_spans
from rag.ingest.dates import as_of_date
from rag.results import Hit

SEED_ID = "000_1511c0eeef884a91.txt"


def _check_short(a, article_text: str) -> None:
    """The short answer is an exact span of citation n's quote at the stated offsets."""
    s = a.short
    assert s is not None
    c = next(c for c in a.citations if c.n == s.n)
    assert article_text[s.start:s.end] == s.text
    assert c.start <= s.start < s.end <= c.end
    assert c.quote[s.start - c.start:s.end - c.start] == s.text


# -- the short answer, pure ---------------------------------------------------------------
@pytest.mark.parametrize(("question", "sentence", "expected"), [
    ("How many missiles were intercepted?",
     "According to a U.S. official, Ukraine fired about eight of the missiles, and just two "
     "were intercepted.", "two"),
    ("How much will the tram line cost?",
     "The line, approved by the council, will cost 312 million euros.", "312 million euros"),
    ("On which dates did the strikes happen?",
     "The ministry said the strikes took place on November 23 and 25, targeting sites.",
     "November 23 and 25"),
    ("Which leader lowered the threshold for nuclear weapons?",
     "It came as Russian President Vladimir Putin lowered the threshold for nuclear weapons.",
     "Vladimir Putin"),
    ("Which airline will weigh passengers before they board?",
     "Air New Zealand said on Tuesday it will weigh passengers before boarding.",
     "Air New Zealand"),
])
def test_short_answer_spans(question: str, sentence: str, expected: str) -> None:
    got = best_span(question, sentence)
    assert got is not None
    start, end, text = got
    assert text == expected == sentence[start:end]


def test_no_short_answer_for_why_how_or_statements() -> None:
    s = "Russia said it would retaliate because the strikes used American missiles."
    for q in ("Why did Russia threaten to retaliate?", "How did Russia respond?",
              "What did Russia say?", "Did Russia respond?"):
        assert asked_kind(q) is None
        assert best_span(q, s) is None


def test_spans_are_exact_substrings_on_odd_text() -> None:
    sentences = ["“Two”, said the U.S. official — 1,000 days into the war (Nov. 19).",
                 "Zürich's São Paulo office paid €3.5bn on 5 May 2023, or 12% more.",
                 "", "   ", "????", "a" * 500]
    for q in ("How many days?", "Who said it?", "When was it paid?", "Which office paid?",
              "What did it pay?", "How much was paid?"):
        for s in sentences:
            for sp in score_spans(q, s):
                assert s[sp.start:sp.end] == sp.text and sp.text.strip() == sp.text


# -- as-of, pure --------------------------------------------------------------------------
def _hit(rank: int, score: float, published: str | None) -> Hit:
    return Hit(article_id=f"a{rank}", title="t", published=published, source=None, url=None,
               path=None, rank=rank, score=score, chunk_id=rank, text="x", start=0, end=1)


def test_recency_decay_is_mild_and_keeps_undated() -> None:
    hits = [_hit(1, 0.80, "2019-06-01"), _hit(2, 0.79, "2023-05-30"), _hit(3, 0.50, None),
            _hit(4, 0.40, "2023-05-31")]
    got = prefer_recent(hits, "2023-06-01", k=4, weight=0.05)
    # A close older hit yields to a nearer one; a far weaker one does not jump ahead.
    assert [h.article_id for h in got] == ["a2", "a1", "a3", "a4"]
    assert [h.rank for h in got] == [1, 2, 3, 4]
    assert [h.article_id for h in prefer_recent(hits, "2023-06-01", 4, weight=0.0)] == [
        "a1", "a2", "a3", "a4"]


def test_as_of_date_forms() -> None:
    from rag.errors import InputError

    assert as_of_date("2023/06/01") == as_of_date("2023-06-01") == "2023-06-01"
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        as_of_date("last tuesday")


def test_as_of_excludes_later_articles(tmp_path: Path, fake) -> None:
    corpus = tmp_path / "news.jsonl"
    rows = [
        {"id": "old", "title": "Mayor vote", "published": "2023-05-01",
         "text": "The city council elected Anna Berg as mayor of Lund on Monday."},
        {"id": "new", "title": "Mayor vote again", "published": "2023-07-01",
         "text": "The city council elected Erik Holm as mayor of Lund on Monday."},
        {"id": "undated", "title": "Lund notes",
         "text": "The mayor of Lund opened the new library on Friday."},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    idx = Index.build([corpus], path=tmp_path / "idx", embedder=fake, progress=False)
    june = answer("Who was elected mayor of Lund?", idx, filters=Filters(as_of="2023-06-01"))
    assert {h.article_id for h in june.hits} == {"old", "undated"}
    assert all(c.article_id != "new" for c in june.citations)
    later = answer("Who was elected mayor of Lund?", idx, filters=Filters(as_of="2023-08-01"))
    assert "new" in {h.article_id for h in later.hits}


def test_cli_ask_as_of_and_json_short(tmp_path: Path, fake,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "Tram vote\n\nThe council approved the tram line on Monday. The line will cost 312 "
        "million euros and open in 2027.\n", encoding="utf-8")
    idx_dir = str(tmp_path / "idx")
    Index.build([corpus], path=idx_dir, embedder=fake, progress=False).close()
    q = "How much will the tram line cost?"
    assert main(["ask", q, "--index", idx_dir, "--json", "--as-of", "2030-01-01"],
                embedder=fake) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["short"]["text"] == "312 million euros"
    assert set(got["short"]) == {"text", "n", "start", "end"}
    assert main(["ask", q, "--index", idx_dir], embedder=fake) == 0
    assert capsys.readouterr().out.startswith("312 million euros [1]")
    assert main(["ask", q, "--index", idx_dir, "--as-of", "soon"], embedder=fake) == 1
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_eval_keeps_an_explicit_index_and_refuses_missing_paths(
        tmp_path: Path, fake, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Vote\n\nThe council elected Anna Berg as mayor.\n",
                                  encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "1", "question": "Who was elected mayor?",
                                "answers": ["Anna Berg"], "question_date": "2030/01/01",
                                "evidence": "Anna Berg was elected mayor.",
                                "split": "tune"}) + "\n", encoding="utf-8")
    idx_dir = tmp_path / "index"  # named like the product's default: must still be used
    out = tmp_path / "r.json"
    assert main(["eval", str(gold), "--corpus", str(corpus), "--index", str(idx_dir),
                 "--json", str(out)], embedder=fake) == 0
    assert (idx_dir / "manifest.json").is_file()
    result = json.loads(out.read_text())
    assert result["splits"]["tune"]["n"] == 1 and "ci" in result
    assert result["questions"][0]["strict"] is not None
    assert main(["eval", str(tmp_path / "nope.jsonl"), "--corpus", str(corpus)],
                embedder=fake) == 1
    assert main(["eval", str(gold), "--corpus", str(tmp_path / "nowhere")],
                embedder=fake) == 1


# -- on the seed article, real model ------------------------------------------------------
def test_seed_short_answer_leads_with_two(seed_index) -> None:
    a = answer("How many missiles were intercepted?", seed_index)
    assert not a.abstained
    assert a.short is not None and a.short.text == "two"
    assert len(a.citations) == 1
    _check_short(a, seed_index.article(SEED_ID).text)


# Questions asking for a figure or a name the article never gives ("How much did the ATACMS
# missiles cost?", "Who is the mayor of Karachev?") are NOT yet refused by the fitted model:
# see the README's answers section.
@pytest.mark.parametrize("question", [
    "What did the French president say?",
    "What did the French president say about the strikes?",
])
def test_seed_questions_the_article_never_answers_abstain(seed_index, question: str) -> None:
    a = answer(question, seed_index)
    assert a.abstained, a.text
    assert a.short is None and a.citations == ()


def test_seed_short_answers_are_exact_spans(seed_index) -> None:
    text = seed_index.article(SEED_ID).text
    gold = Path(__file__).parent.parent / "eval" / "gold" / "seeds.jsonl"
    questions = [json.loads(line)["question"] for line in gold.read_text().splitlines()
                 if line.strip()]
    shorts = 0
    for q in questions:
        a = answer(q, seed_index)
        if a.short is not None:
            shorts += 1
            _check_short(a, text)
    assert shorts >= len(questions) // 2


def _scored(text: str, score: float, start: int):
    from rag.answering.extractive import Scored

    hit = Hit(article_id="a", title="T", published=None, source=None, url=None, path=None,
              rank=1, score=1.0, chunk_id=1, text=text, start=start, end=start + len(text))
    return Scored(hit, start, start + len(text), text, score, score, 0.0)


def test_a_lead_without_the_asked_for_phrase_brings_the_sentence_that_has_it() -> None:
    from rag.answering.extractive import KIND_WITHIN, SECOND_WITHIN, select

    q = "Which NFL player says he lost more than 100 pounds on a water fast?"
    lead = _scored("A former NFL champion says he lost more than 100 pounds on a water fast.",
                   0.62, 0)
    name = _scored("Russell Okung spent most of his career weighing more than 300 pounds.",
                   0.62 - (SECOND_WITHIN + KIND_WITHIN) / 2, 80)
    filler = _scored("Such fasts can be dangerous for most people, experts warn.", 0.55, 160)
    chosen = select(q, [lead, filler, name])
    assert [s.start for s in chosen] == [0, 80]  # the name, from below the usual window
    # A lead that already names a person needs no help; nor does a question without a kind.
    named = _scored("Russell Okung says he lost more than 100 pounds on a water fast.", 0.62, 0)
    assert [s.start for s in select(q, [named, filler, name])] == [0]
    why = "Why did the NFL player fast on water?"
    assert [s.start for s in select(why, [lead, filler, name])] == [0]
    # Too far below the lead, even a sentence with the name stays out.
    far = _scored(name.text, 0.62 - KIND_WITHIN - 0.05, 80)
    assert [s.start for s in select(q, [lead, filler, far])] == [0]
