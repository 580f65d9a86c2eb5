"""Smaller points of issue 27.8: UTF-16 without a BOM is decoded (or the skip says the
encoding could not be told), and a length limit that no chunk can meet is an error with a
reason, not hundreds of one-character chunks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write
from fakes import FakeEmbedder

from rag.errors import InputError
from rag.index.facade import Index
from rag.ingest.articles import Article, Skipped, iter_articles
from rag.ingest.chunking import ChunkSpec, chunk_article

TEXT = ("Published 10:00 GMT, March 3rd 2025\nNorway Expels Ambassador Over Fishing Dispute\n"
        "Oslo: Norway ordered the ambassador of Freedonia to leave within seven days after a "
        "dispute over cod quotas in the Barents Sea. The café owners in Tromsø cheered.\n")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read_as_text(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "norway.txt"
    path.write_bytes(TEXT.encode(codec))  # no BOM: as some Windows tools save it
    [art] = list(iter_articles([path]))
    assert isinstance(art, Article), art
    assert art.title == "Norway Expels Ambassador Over Fishing Dispute"
    assert "café owners in Tromsø" in art.text and art.published == "2025-03-03T10:00:00+00:00"


def test_nul_bytes_that_are_not_utf16_say_the_encoding_could_not_be_told(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(bytes(range(256)) * 8 + os.urandom(512))
    [item] = list(iter_articles([path]))
    assert isinstance(item, Skipped)
    assert item.reason.startswith("binary file (NUL bytes)")
    assert "encoding could not be told" in item.reason


def test_a_limit_no_title_can_meet_raises_instead_of_one_character_chunks() -> None:
    title = "A headline of many many words " * 10
    limit = 40

    def fits(chunk: str) -> bool:
        return len(f"{title}\n{chunk}".split()) <= limit

    text = "The council met on Monday. " * 30
    with pytest.raises(InputError, match="length limit"):
        chunk_article("a.txt", text, ChunkSpec(), fits)
    # A limit that leaves room still cuts on sentences, as before.
    chunks = chunk_article("a.txt", text, ChunkSpec(), lambda c: len(c.split()) <= 60)
    assert all(len(c.text) > 20 for c in chunks) and len(chunks) < 10


def test_the_writer_skips_such_an_article_with_the_reason_and_indexes_the_rest(
        tmp_path: Path) -> None:
    long_title = " ".join(f"word{i}" for i in range(30))  # 30 tokens: over 24 alone
    write(tmp_path / "c" / "long.txt", f"{long_title}\n\nThe council met on Monday.")
    write(tmp_path / "c" / "ok.txt", "Short title\n\nThe harbour reopened on Tuesday.")
    idx = Index.build([tmp_path / "c"], path=tmp_path / "idx",
                      embedder=FakeEmbedder(max_tokens=24), progress=False)
    r = idx.last_report
    assert r is not None and (r.added, r.chunks) == (1, 1)
    [skip] = r.skipped
    assert skip.path.endswith("long.txt") and "length limit" in skip.reason
    idx.close()
