"""The answer a journalist reads: the short answer first, one sentence that holds it,
"not in the articles" when the article does not say, and answers as of a date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import Filters, Index, answer
from rag.answering.answer import prefer_recent
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
    short = got["short"]["text"]
    assert "312 million" in short
    assert set(got["short"]) == {"text", "n", "start", "end"}
    assert main(["ask", q, "--index", idx_dir], embedder=fake) == 0
    assert capsys.readouterr().out.startswith(f"{short} [1]")  # the short answer first
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


# -- on the seed article, real model and the shipped reader -------------------------------
# Short answers of the asked type: an agency's acronym for "what acronym", a number for "how
# many", a duration for "how long", a region for "which region", a person for "who". (The
# stage-2 reader answers "which agency made the accusations" with "British", from a
# headline: a known miss, in the README.)
@pytest.mark.parametrize(("question", "expected"), [
    ("What is the Russian acronym of the Federal Security Service?", "FSB"),
    ("How many British diplomats did Russia expel in August?", "six"),
    ("How long does the diplomat have to leave Russia?", "two weeks"),
    ("Which region of Russia is Karachev in?", "Bryansk"),
    ("Who announced that the diplomat's accreditation would be revoked?", "Zakharova"),
])
def test_seed_short_answers_of_the_asked_type(seed_index, question: str, expected: str) -> None:
    a = answer(question, seed_index)
    assert not a.abstained, a.text
    assert a.short is not None and expected in a.short.text, a.short
    # The short answer's sentence first, cited [1]; at most one runner-up sentence after it.
    assert a.short.n == 1 and len(a.citations) <= 2
    assert a.text.startswith(a.citations[0].quote)
    if len(a.citations) == 2:
        assert a.citations[1].quote != a.citations[0].quote and "[2]" in a.text
    _check_short(a, seed_index.article(SEED_ID).text)
    # Sources in the reader's order: the first source is the passage that answers.
    assert a.hits[0].chunk_id == a.citations[0].chunk_id
    assert a.hits[0].start <= a.short.start < a.short.end <= a.hits[0].end


@pytest.mark.parametrize("question", [
    "What did the French president say about the strikes?",
    "What is the population of the Bryansk region?",
])
def test_seed_questions_the_article_never_answers_abstain(seed_index, question: str) -> None:
    a = answer(question, seed_index)
    assert a.abstained, a.text
    assert a.short is None and a.citations == ()
    assert "Closest passages found" in a.text  # the user can still look


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


@pytest.mark.parametrize("question", [
    "x", "?" * 3 + " what", "Wer hat die Raketen abgefangen?", "导弹在哪里被拦截？",
    "How many missiles were intercepted? " * 140,  # ~5,000 characters
])
def test_odd_questions_get_an_answer_or_a_refusal(seed_index, question: str) -> None:
    a = answer(question, seed_index)
    if a.abstained:
        assert a.short is None and a.citations == ()
    else:
        _check_short(a, seed_index.article(SEED_ID).text)


def test_a_tiny_article_and_a_table_never_put_the_short_answer_outside_its_sentence(
        tmp_path: Path, real_embedder) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "tiny.txt").write_text("Vote\n\nAnna Berg won.\n", encoding="utf-8")
    (corpus / "table.txt").write_text(
        "Results\n\n| city | votes |\n| --- | --- |\n| Lyon | 4,210 |\n| Nice | 3,977 |\n"
        "- first item\n- second item: 12 seats\n", encoding="utf-8")
    idx = Index.build([corpus], tmp_path / "idx", embedder=real_embedder, progress=False)
    for q in ("Who won?", "How many votes did Lyon get?", "How many seats?", "Who lost?"):
        a = answer(q, idx)
        if not a.abstained:
            art = idx.article(a.citations[0].article_id).text
            _check_short(a, art)
            assert "\n" not in a.short.text


def test_a_second_sentence_only_when_the_reader_is_torn() -> None:
    """`runner_up`: another sentence's span within the gap, never the best's own sentence
    or a copy of it, never under the line."""
    from rag.answering.extractive import runner_up
    from rag.answering.reader import Reading, Span

    texts = ["Ann Lee won the race. Bob came second.", "Ann Lee won the race.",
             "The winner was Cy Young, the board said."]
    best = Span("Ann Lee", 0, 0, 7, 9.0)
    same_sentence = Span("the race", 0, 12, 20, 8.9)
    copy = Span("Ann Lee", 1, 0, 7, 8.8)
    other = Span("Cy Young", 2, 15, 23, 8.0)
    reading = Reading(best, (best, same_sentence, copy, other), 0.0, 30)
    assert runner_up(reading, texts, best, limit=7.0) == other
    assert runner_up(reading, texts, best, limit=8.5) is None  # outside the gap
    assert runner_up(reading, texts, best, limit=7.0, usable=lambda s: s.passage != 2) is None

