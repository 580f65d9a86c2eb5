"""Sentence vectors stored at index time (rag.index.sentences), in an index built to keep
them (`sentences=True`, `rag index --sentences`): right offsets, never stale."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_ID, SEEDS, write

from rag import Index
from rag.index.sentences import SENTENCE_CHARS, SentenceBlock
from rag.ingest.sentences import split_sentences

QUESTIONS = ["How many missiles were intercepted?", "Where did the missiles hit?",
             "What did Russia threaten?", "Who is the diplomat?"]


@pytest.fixture
def index(tmp_path: Path, fake) -> Index:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEEDS / SEED_ID, corpus / SEED_ID)
    write(corpus / "tram.txt", "Tram line approved\n\nThe council voted on Monday. " * 3
          + "The new tram line will cost 312 million euros. Work starts in May 2026. "
          "Mayor Anne Roux said the line would serve 40,000 riders a day.")
    return Index.build([corpus], tmp_path / "index", embedder=fake, progress=False,
                       sentences=True)


def _blocks(idx: Index) -> list[tuple[str, SentenceBlock]]:
    rows = idx.store.db.execute(
        "SELECT c.article_id, s.spans, s.codes, s.scales FROM sentences s "
        "JOIN chunks c ON c.id=s.chunk_id WHERE c.deleted IS NULL").fetchall()
    return [(a, SentenceBlock.from_row(s, c, sc, idx.dim, SENTENCE_CHARS)) for a, s, c, sc in rows]


def test_stored_sentences_are_the_articles_sentences_once_each(index: Index) -> None:
    blocks = _blocks(index)
    assert blocks
    for article_id in {a for a, _ in blocks}:
        text = index.article(article_id).text
        stored = [tuple(sp) for a, b in blocks if a == article_id for sp in b.spans.tolist()]
        assert len(stored) == len(set(stored))  # overlapping chunks store a sentence once
        assert set(stored) <= set(split_sentences(text))
        for a, b in stored:  # offsets into the article text, trimmed sentence spans
            assert text[a:b].strip() == text[a:b] and text[a:b]
        assert len(stored) >= 0.8 * len(split_sentences(text))


def test_stored_vectors_are_the_sentences_embedded(index: Index, fake) -> None:
    for article_id, block in _blocks(index)[:5]:
        text = index.article(article_id).text
        want = fake.embed([text[a:b][:SENTENCE_CHARS] for a, b in block.spans.tolist()])
        cos = np.sum(block.vectors() * want, axis=1) / np.linalg.norm(block.vectors(), axis=1)
        assert cos.min() > 0.999


def test_another_sentence_length_is_not_served(index: Index) -> None:
    hits = index.search(QUESTIONS[0], k=5)
    assert index.sentence_vectors(hits, SENTENCE_CHARS) != {}
    assert index.sentence_vectors(hits, SENTENCE_CHARS + 1) == {}


def test_a_rewritten_article_never_gets_the_old_vectors(index: Index, tmp_path: Path,
                                                        fake) -> None:
    path = tmp_path / "corpus" / "tram.txt"
    write(path, "Tram line approved\n\nThe vote was close on Tuesday. "
          "The new tram line will cost 280 million euros, officials said.")
    index.add([tmp_path / "corpus"], progress=False)
    hits = [h for h in index.search("How much will the tram line cost?", k=5)
            if "280 million" in h.text]
    assert hits
    text = index.article(hits[0].article_id).text
    got = index.sentence_vectors(hits)
    assert got
    for (article_id, a, b), vec in got.items():
        want = fake.embed([index.article(article_id).text[a:b][:SENTENCE_CHARS]])[0]
        assert float(vec @ want) / float(np.linalg.norm(vec)) > 0.999
    assert any("280 million" in text[a:b] for (_, a, b) in got)
    # The rewrite purged nothing yet (readers may be a version behind); the next write does.
    index.add([tmp_path / "corpus"], progress=False)
    write(path, "Tram line approved\n\nNo cost was given.")
    index.add([tmp_path / "corpus"], progress=False)
    db = sqlite3.connect(index.path / "store.sqlite")
    orphans = db.execute("SELECT count(*) FROM sentences WHERE chunk_id NOT IN "
                         "(SELECT id FROM chunks)").fetchone()[0]
    assert orphans == 0


def test_real_model_int8_vectors_match_fp32(tmp_path: Path, real_embedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEEDS / SEED_ID, corpus / SEED_ID)
    seed_index = Index.build([corpus], tmp_path / "index", embedder=real_embedder,
                             progress=False, sentences=True)
    blocks = _blocks(seed_index)
    text = seed_index.article(blocks[0][0]).text
    spans = [sp for _, b in blocks for sp in b.spans.tolist()]
    got = np.concatenate([b.vectors() for _, b in blocks])
    want = real_embedder.embed([text[a:b][:SENTENCE_CHARS] for a, b in spans])
    cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1)
    print(f"min cos {cos.min():.6f} over {len(spans)} sentences")
    assert cos.min() > 0.9995


def test_backfill_upgrades_an_older_index_to_the_same_vectors(index: Index) -> None:
    from rag.index.sentences import backfill
    from rag.index.store import Store

    hits = index.search(QUESTIONS[1], k=5)
    built = index.sentence_vectors(hits)
    index.store.db.execute("DELETE FROM sentences")
    index.store.db.commit()
    assert index.sentence_vectors(hits) == {}
    writer = Store(index.path / "store.sqlite")
    chunks = index.stats().chunks
    assert 0 < backfill(writer, index.embedder.embed, batch=1) <= chunks
    assert backfill(writer, index.embedder.embed) == 0  # nothing left to fill
    again = index.sentence_vectors(hits)
    assert again.keys() == built.keys()
    assert all(np.allclose(again[k], built[k]) for k in built)


def test_a_chunk_without_a_whole_sentence_is_indexed(tmp_path: Path, fake) -> None:
    # One over-long sentence is cut into token windows: no chunk holds a whole sentence.
    write(tmp_path / "c" / "long.txt", "Long\n\n" + " ".join(["word"] * 900) + ".")
    write(tmp_path / "c" / "short.txt", "Short\n\nOne sentence here. Another one there.")
    idx = Index.build([tmp_path / "c"], tmp_path / "idx", embedder=fake, progress=False,
                      sentences=True)
    hits = idx.search("word", k=3)
    assert hits and idx.stats().articles == 2
    assert all(h.text for h in hits)
    assert idx.sentence_vectors(hits) is not None


def test_chunk_sentences_matches_the_plain_scan_on_random_texts() -> None:
    """The one-pass assignment equals "the first chunk holding the sentence whole"."""
    import random

    from rag.index.sentences import chunk_sentences
    from rag.ingest.chunking import ChunkSpec, chunk_article
    from rag.ingest.sentences import split_sentences

    def plain(text: str, chunks: list) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = [[] for _ in chunks]
        for a, b in split_sentences(text):
            for n, c in enumerate(chunks):
                if c.start <= a and b <= c.end:
                    out[n].append((a, b))
                    break
        return out

    rng = random.Random(7)
    words = "the harbour ferry strike minister said monday two missiles intercepted".split()
    for _ in range(60):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.choice([2, 9, 30, 300])))
                     .capitalize() + rng.choice([".", "?", "\n\n"])
                     for _ in range(rng.randint(1, 40))]
        text = " ".join(sentences)
        spec = ChunkSpec(max_tokens=rng.choice([40, 160]), overlap_tokens=rng.choice([0, 10, 30]))
        chunks = chunk_article("x", text, spec)
        assert chunk_sentences(text, chunks) == plain(text, chunks)
