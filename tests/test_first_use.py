"""A new user's first minutes: an empty index says what to do, in the chat and the CLI.

The service and the CLI are real; the embedder is the boundary fake.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeEmbedder

from rag import Index
from rag.errors import EmptyIndexError


@pytest.fixture
def empty_service(tmp_path: Path) -> Iterator[object]:
    """The app's service over a new index folder and no corpus (`app.py --index NEWDIR`)."""
    from rag.app.service import Service

    svc = Service(tmp_path / "new-index", None, embedder=FakeEmbedder())
    svc.start()
    svc.index()  # waits until it is open
    yield svc
    svc.index().close()


def test_an_empty_index_says_how_to_add_articles_in_the_chat(empty_service: object) -> None:
    from rag.app.articles_tab import articles_html, placeholder
    from rag.app.service import Service, Settings

    assert isinstance(empty_service, Service)
    for text in (empty_service.summary(), placeholder(empty_service),
                 articles_html([], empty_service.empty_help())):
        assert "upload box" in text and "Articles" in text, text
        assert f"rag index FOLDER --index {empty_service.index_dir}" in text, text
        assert "missile" not in text
    with pytest.raises(EmptyIndexError, match="upload box"):
        list(empty_service.ask("Who won the election?", (), Settings()))


@pytest.mark.slow  # imports gradio
def test_a_question_before_any_article_is_answered_with_what_to_do(empty_service: object) -> None:
    from rag.app.blocks import _respond
    from rag.app.history import Store

    *_, last = _respond(empty_service, "Who won the election?", Store().to_json(), 5, "", "",
                        None)  # type: ignore[arg-type]
    answer = last[2][-1]["content"]
    assert "upload box" in answer and "rag index FOLDER" in answer
    assert "Error" not in answer and "Not in the articles" not in answer


def test_an_empty_index_says_how_to_add_articles_in_the_cli(driver: list[str],
                                                            tmp_path: Path) -> None:
    index = tmp_path / "new-index"
    Index.open(index, embedder=FakeEmbedder()).close()  # made, never filled
    for cmd in (["ask", "Who won the election?"], ["search", "election"],
                ["ask", "Who won?", "--json"]):
        r = subprocess.run([*driver, *cmd, "--index", str(index)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1, r
        assert r.stderr == (f"error: the index at {index} holds no articles yet; add some with "
                            f"`rag index FOLDER --index {index}`\n")
        assert r.stdout == ""
    # Once an article is in, the same command answers.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Election result\n\nThe Green party won the election.\n")
    assert subprocess.run([*driver, "index", str(corpus), "--index", str(index), "-q"],
                          timeout=120).returncode == 0
    r = subprocess.run([*driver, "ask", "Who won the election?", "--index", str(index),
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["hits"], r.stderr
