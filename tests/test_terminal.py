"""What people see as an answer is worked on: `rag search` lines, indexing progress in a
log, Ctrl-C stopping the chat server, and an LLM answer streamed sentence by sentence.

The CLI runs in a subprocess with the fake embedder (conftest's `driver`); stdout and
stderr are pipes, as when output goes to a log file.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env
from test_app import ROOT, start_app
from test_llm import Reply, server  # noqa: F401 - the fixture

SEED = ROOT / "seeds"


def run(driver: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driver, *args], capture_output=True, text=True, timeout=300,
                          env=child_env())


def test_index_log_and_search_lines(driver: list[str], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SEED, corpus)
    (corpus / "second.txt").write_text("Harbour news\nThe crane lifted boxes. " * 60,
                                       encoding="utf-8")
    index = str(tmp_path / "index")
    out = run(driver, "index", str(corpus), "--index", index)
    assert out.returncode == 0, out.stderr
    # Not a terminal: progress as lines (first and last at least), no bar's carriage returns.
    assert "indexing: 1 of 2 articles (50%)" in out.stderr
    assert "indexing: 2 of 2 articles (100%)" in out.stderr and "\r" not in out.stderr
    assert out.stdout.startswith("2 added")

    out = run(driver, "search", "crane lifted boxes", "--index", index, "-k", "3")
    lines = out.stdout.splitlines()
    head = next(ln for ln in lines if "Russia Claims" in ln)
    assert "(published 26 Nov 2024)" in head and "T19:23" not in out.stdout
    body = lines[lines.index(head) + 1]
    harbour = [ln for ln in lines if ln.startswith("    The crane")]
    assert harbour and harbour[0].endswith("boxes. …")  # whole words, the cut marked
    assert body.startswith("    ") and len(body) <= 4 + 402


def test_snippet_cuts_between_words() -> None:
    from rag.terminal import snippet

    assert snippet("Moscow said two were intercepted", 14) == "Moscow said …"
    assert snippet("short", 14) == "short"


@pytest.mark.slow
def test_ctrl_c_stops_the_server(tmp_path: Path) -> None:
    """With a browser's event stream open, Ctrl-C (SIGINT) still ends the app, status 130."""
    corpus = tmp_path / "seeds"
    shutil.copytree(SEED, corpus)
    proc, url = start_app(tmp_path, corpus)
    stream = subprocess.Popen([sys.executable, "-c", (
        "import urllib.request,sys; r = urllib.request.urlopen(sys.argv[1] + "
        "'gradio_api/heartbeat/x', timeout=60); r.read()"), url])
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # a hang guard, not a speed figure
    finally:
        stream.kill()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_llm_stream_shows_only_verified_sentences(seed_index, server) -> None:  # noqa: F811
    """Sentence by sentence, each shown once it passed verification: the unsupported one
    never appears, not even for a moment."""
    from rag import OpenAICompatible, answer_stream
    from rag.results import Answer

    server.script(Reply(deltas=(
        "According to a U.S. official, just two of the ", "missiles were intercepted [1]. ",
        "Five missiles hit Moscow [1]. ", "The missiles struck an ammunition supply ",
        "location in Karachev [1]. ", "That is all.")))
    llm = OpenAICompatible(server.base_url, "test-model", backoff=0.01, retries=1)
    parts = list(answer_stream("How many missiles were intercepted?", seed_index,
                               mode="llm", llm=llm))
    texts = [p for p in parts if isinstance(p, str)]
    final = parts[-1]
    assert isinstance(final, Answer) and "Moscow" not in final.text
    assert len(texts) >= 2 and all("Moscow" not in t for t in texts)
    assert texts[0].startswith("According to a U.S. official, just two") and "[1]" in texts[0]
    assert all(b.startswith(a.rstrip(" .")[:40]) for a, b in zip(texts, texts[1:]))  # grows
