"""Stored sentence vectors are optional and off by default (`rag index --sentences`): an
index built by default embeds only its chunks, records its choice, and keeps it in later
writes; an older index that stores them still loads, answers and keeps storing them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import SEED_ID, SEEDS, write
from fakes import FakeEmbedder

from rag import Index, answer
from rag.cli import main
from rag.errors import InputError
from rag.index.writer import embedding_texts


class Seeing(FakeEmbedder):
    """The boundary fake, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen += list(texts)
        return super().embed(texts)


def corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEEDS / SEED_ID, folder / SEED_ID)
    write(folder / "tram.txt", "Tram line approved\n\nThe council voted on Monday. The new "
          "tram line will cost 312 million euros. Work starts in May 2026.")
    return folder


def sentence_rows(path: Path) -> int:
    db = sqlite3.connect(path / "store.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM sentences").fetchone()[0])
    finally:
        db.close()


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def chunk_texts(idx: Index) -> list[str]:
    """What indexing must embed for the chunks: each chunk under its title."""
    from rag.ingest.chunking import Chunk

    out = []
    for info in idx.articles():
        art = idx.article(info.id)
        rows = idx.store.db.execute('SELECT ord, start, "end" FROM chunks WHERE article_id=? '
                                    "AND deleted IS NULL ORDER BY ord", (info.id,)).fetchall()
        out += embedding_texts(art, [Chunk(art.id, o, a, b, art.text[a:b]) for o, a, b in rows])
    return out


def test_a_default_index_embeds_only_its_chunks(tmp_path: Path) -> None:
    fake = Seeing()
    idx = Index.build([corpus(tmp_path / "c")], tmp_path / "idx", embedder=fake,
                      progress=False)
    assert idx.sentences is False and sentence_rows(idx.path) == 0
    assert sorted(fake.seen) == sorted(chunk_texts(idx))  # no sentence embedded alone
    assert len(fake.seen) == idx.stats().chunks == idx.last_report.embedded
    assert idx.store.meta()["sentences"] == "0" and manifest(idx.path)["sentences"] is False
    assert idx.stats().sentences is False
    hits = idx.search("How much will the tram line cost?", k=3)
    assert hits and idx.sentence_vectors(hits) == {}


def test_sentences_flag_stores_them_and_later_writes_keep_it(tmp_path: Path) -> None:
    fake, docs, path = Seeing(), corpus(tmp_path / "c"), tmp_path / "idx"
    assert main(["index", str(docs), "--index", str(path), "--sentences", "-q"],
                embedder=fake) == 0
    idx = Index.load(path, embedder=fake)
    rows = sentence_rows(path)
    assert idx.sentences is True and rows > 0
    assert idx.store.meta()["sentences"] == "1" and manifest(path)["sentences"] is True
    stored = sum(len(r[0]) // 8 for r in idx.store.db.execute("SELECT spans FROM sentences"))
    assert len(fake.seen) == idx.stats().chunks + stored  # chunks, then each sentence once
    # A later write without the flag keeps the index's choice.
    write(docs / "ferry.txt", "Ferry strike\n\nThe ferry crews walked out on Friday. "
          "Talks resume next week.")
    assert main(["index", str(docs), "--index", str(path), "-q"], embedder=fake) == 0
    assert sentence_rows(path) > rows and manifest(path)["sentences"] is True


def test_asking_an_index_for_the_other_choice_says_how_to_rebuild(tmp_path: Path,
                                                                   capsys) -> None:
    docs, path, fake = corpus(tmp_path / "c"), tmp_path / "idx", FakeEmbedder()
    Index.build([docs], path, embedder=fake, progress=False).close()
    with pytest.raises(InputError, match="--rebuild --sentences"):
        Index.open(path, embedder=fake, sentences=True)
    assert main(["index", str(docs), "--index", str(path), "--sentences", "-q"],
                embedder=fake) == 1
    assert "--rebuild --sentences" in capsys.readouterr().err
    # --rebuild changes it; a later plain rebuild keeps the new choice.
    assert main(["index", str(docs), "--index", str(path), "--sentences", "--rebuild", "-q"],
                embedder=fake) == 0
    assert sentence_rows(path) > 0 and manifest(path)["sentences"] is True
    assert main(["index", str(docs), "--index", str(path), "--rebuild", "-q"],
                embedder=fake) == 0
    assert sentence_rows(path) > 0 and manifest(path)["sentences"] is True


def test_an_older_index_with_sentences_loads_answers_and_keeps_them(tmp_path: Path) -> None:
    docs, path, fake = corpus(tmp_path / "c"), tmp_path / "idx", FakeEmbedder()
    Index.build([docs], path, embedder=fake, progress=False, sentences=True).close()
    # As written before the choice was recorded: sentence rows, no "sentences" key.
    db = sqlite3.connect(path / "store.sqlite")
    with db:
        db.execute("DELETE FROM meta WHERE key='sentences'")
    db.close()
    old = manifest(path)
    del old["sentences"]
    (path / "manifest.json").write_text(json.dumps(old))
    rows = sentence_rows(path)

    idx = Index.load(path, embedder=fake)
    assert idx.sentences is True
    ans = answer("How much will the tram line cost?", idx)
    assert ans.hits and ans.citations and not ans.abstained
    hits = idx.search("How much will the tram line cost?", k=3)
    assert idx.sentence_vectors(hits)  # still served
    write(docs / "ferry.txt", "Ferry strike\n\nThe ferry crews walked out on Friday.")
    idx.add([docs], progress=False)
    assert sentence_rows(path) > rows  # its later writes keep storing them
    idx.close()
    # Rebuilt with --no-sentences: gone, and recorded.
    again = Index.rebuild([docs], path, embedder=fake, progress=False, sentences=False)
    assert again.sentences is False and sentence_rows(path) == 0
    assert again.store.meta()["sentences"] == "0" and manifest(path)["sentences"] is False


def test_an_index_from_before_sentence_vectors_stays_without(tmp_path: Path) -> None:
    docs, path, fake = corpus(tmp_path / "c"), tmp_path / "idx", Seeing()
    Index.build([docs], path, embedder=fake, progress=False).close()
    db = sqlite3.connect(path / "store.sqlite")
    with db:  # neither a recorded choice nor any stored sentence
        db.execute("DELETE FROM meta WHERE key IN ('sentences', 'sentence_chars')")
    db.close()
    idx = Index.load(path, embedder=fake)
    assert idx.sentences is False
    write(docs / "ferry.txt", "Ferry strike\n\nThe ferry crews walked out on Friday.")
    fake.seen.clear()
    r = idx.add([docs], progress=False)
    assert r.added == 1 and sentence_rows(path) == 0 and len(fake.seen) == r.chunks_added
