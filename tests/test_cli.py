"""The `rag` command's contract, as other tools script against it (real model, real CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import SEED_ID, SEED_TITLE, SEEDS

pytestmark = pytest.mark.slow


def rag(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "seeds"
    corpus.mkdir()
    shutil.copy(SEEDS / SEED_ID, corpus / SEED_ID)
    index = root / "index"
    first = rag("index", str(corpus), "--index", str(index), "-q")
    return corpus, index, first


def test_index_prints_a_summary_and_reindexing_adds_nothing(built):
    corpus, index, first = built
    assert first.returncode == 0, first.stderr
    assert "1 added" in first.stdout and "chunks" in first.stdout
    again = rag("index", str(corpus), "--index", str(index), "-q")
    assert again.returncode == 0
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in again.stdout


def test_search_json_contract(built):
    _, index, _ = built
    out = rag("search", "ammunition supply location", "--index", str(index), "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    keys = {"rank", "score", "article_id", "title", "published", "source", "url", "path",
            "chunk_id", "text", "start", "end"}
    assert hits and all(keys <= set(h) for h in hits)
    assert "Karachev" in hits[0]["text"] and hits[0]["title"] == SEED_TITLE


def test_ask_json_contract(built):
    _, index, _ = built
    out = rag("ask", "How many missiles were intercepted?", "--index", str(index), "--json")
    assert out.returncode == 0, out.stderr
    ans = json.loads(out.stdout)
    assert {"answer", "abstained", "citations", "hits"} <= set(ans)
    assert ans["abstained"] is False and "two" in ans["answer"]
    ckeys = {"n", "article_id", "title", "published", "source", "url", "path", "quote",
             "start", "end"}
    assert ans["citations"] and all(ckeys == set(c) for c in ans["citations"])
    assert any("two were intercepted" in c["quote"] for c in ans["citations"])


def test_stats_and_errors_say_what_to_do(built, tmp_path):
    _, index, _ = built
    stats = rag("stats", "--index", str(index), "--json")
    assert stats.returncode == 0 and json.loads(stats.stdout)["articles"] == 1
    missing = rag("search", "x", "--index", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error:") and "rag index" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = rag("index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "i"))
    assert bad.returncode == 1 and "does not exist" in bad.stderr
