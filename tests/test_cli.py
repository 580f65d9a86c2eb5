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


def test_search_shows_how_well_a_passage_matches_beside_its_rank(built):
    """The rank score is relative to the query's candidates (the best scores near 1.0
    however weak); the cosine says how well the passage matches, across queries."""
    _, index, _ = built
    good = json.loads(rag("search", "ammunition supply location Karachev", "--index",
                          str(index), "--json").stdout)
    weak = json.loads(rag("search", "x", "--index", str(index), "--json").stdout)
    assert good[0]["score"] >= 0.5 and weak[0]["score"] >= 0.5  # rank: no help here
    assert good[0]["dense"] > 2 * weak[0]["dense"]  # the cosine tells them apart
    text = rag("search", "x", "--index", str(index), "-k", "1")
    assert f"cosine {weak[0]['dense']:.2f}, rank {weak[0]['score']:.4f}" in text.stdout
    helptext = rag("search", "--help").stdout
    assert "cosine" in helptext and "min-max normalised" in helptext and '"dense"' in helptext


def test_search_k_returns_k_or_says_why_fewer(built, tmp_path):
    corpus, index, _ = built
    few = rag("search", "missiles", "--index", str(index), "-k", "5", "--json")
    hits = json.loads(few.stdout)
    assert 0 < len(hits) < 5  # one short article: its chunks join into fewer passages
    assert f"{len(hits)} passage" in few.stderr and "not 5" in few.stderr, few.stderr
    assert "1 article" in few.stderr
    more = tmp_path / "more"
    shutil.copytree(corpus, more)
    for i, topic in enumerate(("harbour", "rail strike", "bridge", "election")):
        (more / f"n{i}.txt").write_text(f"News about the {topic}\n\nThe {topic} story: "
                                        f"officials spoke about the {topic} on Monday.\n")
    assert rag("index", str(more), "--index", str(tmp_path / "i"), "-q").returncode == 0
    full = rag("search", "missiles", "--index", str(tmp_path / "i"), "-k", "5", "--json")
    assert len(json.loads(full.stdout)) == 5 and "note:" not in full.stderr


def _pty_run(cmd: list[str], answer: str) -> tuple[int, str]:
    """Run `cmd` with a terminal as its input, type `answer`, and return (status, output)."""
    import os
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    os.write(master, answer.encode() + b"\n")
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(60), out.decode(errors="replace")


def test_remove_asks_on_a_terminal_and_needs_yes_elsewhere(driver, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, title in (("a.txt", "Harbour reopens"), ("b.txt", "Rail strike ends")):
        (corpus / name).write_text(f"{title}\n\nThe {title.lower()} story, told on Monday.\n")
    index = str(tmp_path / "index")
    run = lambda *a, **kw: subprocess.run([*driver, *a], capture_output=True, text=True,
                                          timeout=120, **kw)
    assert run("index", str(corpus), "--index", index, "-q").returncode == 0

    piped = run("remove", "a.txt", "--index", index, stdin=subprocess.DEVNULL)
    assert piped.returncode == 1 and "not a terminal" in piped.stderr and "--yes" in piped.stderr
    no, out = _pty_run([*driver, "remove", "a.txt", "--index", index], "n")
    assert no == 1 and "Remove 1 article from" in out and "Harbour reopens (a.txt)" in out, out
    assert "nothing removed" in out
    def stats() -> int:
        from fakes import FakeEmbedder

        from rag import Index

        idx = Index.load(index, embedder=FakeEmbedder())
        try:
            return idx.stats().articles
        finally:
            idx.close()

    assert stats() == 2
    yes, out = _pty_run([*driver, "remove", "a.txt", "--index", index], "y")
    assert yes == 0 and "removed 1 article" in out and stats() == 1, out

    unknown = run("remove", "b.txt", "nope.txt", "--index", index, "--yes")
    assert unknown.returncode == 3 and "no article 'nope.txt'" in unknown.stderr
    assert "Rail strike ends (b.txt)" in unknown.stdout and stats() == 0
    none = run("remove", "nope.txt", "--index", index, "--yes")
    assert none.returncode == 1
