"""`answer(mode="llm")` end to end: the real index and model, a real local HTTP server."""

from __future__ import annotations

import pytest
from conftest import SEED_ID
from test_llm import FakeLLMServer, Reply, server  # noqa: F401 - the fixture

from rag import OpenAICompatible, answer
from rag.errors import LLMError

pytestmark = pytest.mark.slow


def llm(server: FakeLLMServer) -> OpenAICompatible:  # noqa: F811
    return OpenAICompatible(server.base_url, "test-model", backoff=0.01, retries=1)


def test_llm_answer_drops_bogus_markers_and_unsupported_sentences(seed_index, server):  # noqa: F811
    server.script(Reply(deltas=(
        "According to a U.S. official, just two of the missiles were intercepted [1]. ",
        "Five missiles hit Moscow [1]. ",
        "The strikes took place on November 23 and 25 [9].",
    )))
    a = answer("How many missiles were intercepted?", seed_index, mode="llm", llm=llm(server))
    assert not a.abstained and a.mode == "llm"
    assert "two" in a.text and "Moscow" not in a.text and "[9]" not in a.text
    assert any("Five missiles" in d for d in a.dropped)
    text = seed_index.article(SEED_ID).text
    assert a.citations and all(text[c.start:c.end] == c.quote for c in a.citations)
    sent = server.requests[-1]["body"]
    assert sent["model"] == "test-model" and sent["stream"] is True
    assert "How many missiles were intercepted?" in sent["messages"][-1]["content"]


def test_llm_not_in_articles_abstains(seed_index, server):  # noqa: F811
    server.script(Reply(deltas=("NOT_IN_ARTICLES",)))
    a = answer("What did the French president say?", seed_index, mode="llm", llm=llm(server))
    assert a.abstained and a.citations == ()


def test_endpoint_down_falls_back_or_fails_clearly(seed_index):
    down = OpenAICompatible("http://127.0.0.1:9/v1", "m", retries=0, timeout=2)
    a = answer("How many missiles were intercepted?", seed_index, mode="llm", llm=down)
    assert a.mode == "extractive" and "two" in a.text
    assert a.notes and "127.0.0.1:9" in a.notes[0]
    with pytest.raises(LLMError):
        answer("How many missiles were intercepted?", seed_index, mode="llm", llm=down,
               fallback=False)


def test_follow_up_is_rewritten_by_the_llm(seed_index, server):  # noqa: F811
    server.script(
        Reply(deltas=("How long does the expelled British diplomat have to leave Russia?",)),
        Reply(deltas=("He has been ordered to leave the country within two weeks [1, 2, 3].",)),
    )
    history = [("Who expelled the British diplomat?", "Russian authorities did [1].")]
    a = answer("How long does he have to leave?", seed_index, history=history, mode="llm",
               llm=llm(server))
    assert len(server.requests) == 2
    assert not a.abstained and "two weeks" in a.text
    assert any("two weeks" in c.quote for c in a.citations)
