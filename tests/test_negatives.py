"""The reader's training negatives: each kind is what its docstring says, on plain data."""

from __future__ import annotations

import random

from rag.training.negatives import (
    Example,
    edit_question,
    minus_answer_sentence,
    other_paragraph,
    related_paragraphs,
    swap_in_paragraph,
    training_stream,
)

PARA = ("The harbour of Lindqvist was rebuilt in 1921 by the engineer Maria Holt. "
        "Ships from Norway reached it every week. "
        "In 1934 the city council, led by Erik Sand, named the new pier after Holt.")
OTHER = "The railway to Lindqvist opened in 1899 and closed when Anna Berg was mayor."


def example(question: str, answer: str) -> Example:
    return Example("q", "Lindqvist", PARA, question, PARA.index(answer), answer)


def test_a_swap_keeps_every_word_in_the_passage_and_moves_away_from_the_answer() -> None:
    ex = example("Who rebuilt the harbour of Lindqvist in 1921?", "Maria Holt")
    made = [swap_in_paragraph(ex, random.Random(seed)) for seed in range(20)]
    assert all(m is not None for m in made)
    answer_sentence = PARA[:PARA.index("Ships")]
    for m in made:
        assert m is not None and m.kind == "swap" and not m.answerable
        assert m.question != ex.question
        new = set(m.question.rstrip("?").split()) - set(ex.question.rstrip("?").split())
        assert new and all(w in PARA for w in new), m.question  # nothing the passage lacks
        assert not any(w in answer_sentence for w in new), m.question  # not the answer's sentence
    assert any("1934" in m.question for m in made if m)


def test_a_swap_needs_a_detail_of_the_passage_in_the_question() -> None:
    ex = example("who rebuilt the harbour?", "Maria Holt")  # no name, year or number
    assert swap_in_paragraph(ex, random.Random(0)) is None


def test_a_sentence_start_is_not_taken_for_a_name() -> None:
    ex = example("Who named the pier in 1934 after Holt?", "the city council")
    for seed in range(30):
        m = swap_in_paragraph(ex, random.Random(seed))
        assert m is None or not {"Ships", "In", "The"} & set(m.question.split()), m.question


def test_an_edit_brings_in_a_detail_the_passage_lacks_or_negates() -> None:
    ex = example("Who rebuilt the harbour of Lindqvist in 1921?", "Maria Holt")
    for seed in range(10):
        m = edit_question(ex, [PARA, OTHER], random.Random(seed))
        assert m is not None and not m.answerable and m.kind == "edit"
        new = set(m.question.rstrip("?").split()) - set(ex.question.rstrip("?").split())
        assert "not" in new or any(w not in PARA for w in new), m.question


def test_missing_topic_negatives_lose_the_answer() -> None:
    ex = example("Who rebuilt the harbour of Lindqvist in 1921?", "Maria Holt")
    minus = minus_answer_sentence(ex)
    assert minus is not None and "Maria Holt" not in minus.context and not minus.answerable
    other = other_paragraph(ex, [PARA, OTHER], random.Random(0))
    assert other is not None and other.context == OTHER and not other.answerable


def test_the_stream_is_fixed_by_its_seed_and_keeps_answers_on_their_slice() -> None:
    exs = [example(q, a) for q, a in [
        ("Who rebuilt the harbour of Lindqvist in 1921?", "Maria Holt"),
        ("When was the harbour rebuilt?", "1921"),
        ("Who led the city council in 1934?", "Erik Sand"),
        ("Where did ships come from?", "Norway"),
    ] * 5]
    exs = [Example(f"q{i}", e.title, e.context, e.question, e.answer_start, e.answer_text)
           for i, e in enumerate(exs)]
    a, b = training_stream(exs, seed=3), training_stream(exs, seed=3)
    assert a == b and len(a) == len(exs)
    assert training_stream(exs, seed=4) != a
    kinds = {e.kind for e in a}
    assert "answer" in kinds and kinds - {"answer"}  # both answers and negatives
    for e in a:
        if e.answerable:
            assert e.context[e.answer_start:e.answer_start + len(e.answer_text)] == e.answer_text
        else:
            assert e.answer_text == ""


def test_a_mix_is_read_or_refused_with_what_to_write() -> None:
    import pytest

    from rag.errors import InputError
    from rag.training.negatives import parse_mix

    assert parse_mix("") is None
    assert parse_mix("answer=.5, swap=.5") == {"answer": 0.5, "swap": 0.5}
    for bad, says in (("answer=.5,typo=.5", "unknown kind"), ("answer=x", "not a number"),
                      ("edit=1", "needs answer")):
        with pytest.raises(InputError, match=says):
            parse_mix(bad)
    exs = [Example(f"q{i}", "t", PARA, "Who rebuilt the harbour of Lindqvist in 1921?",
                   PARA.index("Maria Holt"), "Maria Holt") for i in range(30)]
    only_answers = training_stream(exs, seed=0, mix=parse_mix("answer=1"))
    assert {e.kind for e in only_answers} == {"answer"}


def test_a_related_negative_is_the_closest_paragraph_of_another_article() -> None:
    """BM25's first paragraph from another article that lacks the answer: never one of the
    question's own article, never one holding the answer, the same every time."""
    ex = example("Who rebuilt the harbour of Lindqvist in 1921?", "Maria Holt")
    paragraphs = {
        "Lindqvist": [PARA, OTHER],
        "Harbours": ["The harbour of Tromsø was rebuilt after a storm; Lindqvist's was not.",
                     "Maria Holt rebuilt the harbour of Lindqvist, the guide says.",
                     "Wheat prices fell in the autumn."],
        "Farming": ["Wheat and barley grow on the plain."],
    }
    got = related_paragraphs([ex, ex], paragraphs)
    assert got[0] == paragraphs["Harbours"][0]  # on topic, no answer; not the one with it
    assert got == related_paragraphs([ex, ex], paragraphs)
    lonely = Example("q2", "Farming", "Barley is sown in May.", "When is oat sown?", -1, "")
    assert related_paragraphs([lonely], {"Farming": ["Barley is sown in May."]}) == [None]
    stream = training_stream([ex] * 40, seed=3, mix={"answer": 1, "related": 1})
    # One article: no other to draw from, so the question stays as it is, answerable.
    assert {m.kind for m in stream} == {"answer"} and all(m.answerable for m in stream)
