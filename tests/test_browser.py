"""The chat in a real headless Chromium (Debian's /usr/bin/chromium via Python Playwright).

Asks a seed question and checks the sources panel highlights the quoted passage; asks a
question that surfaces an article whose title and body carry <script> and <img onerror>,
and checks nothing ran; checks a follow-up uses the conversation, and that the same
follow-up in a second browser session (no conversation yet) is not answered. Set RAG_SCREENSHOT=1 to refresh docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_app import ROOT, SEED_TITLE, seed_corpus, start_app, stop_app  # tests/ is on sys.path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 90_000
FOLLOW_UP = "What is he accused of?"
# Read at import: conftest.py clears RAG_* variables for each test.
SCREENSHOT = bool(os.environ.get("RAG_SCREENSHOT"))

XSS_ARTICLE = """Published 09:00 IST, June 30th 2024
<script>window.__xss=1</script>Glorpton Harbour Report <img src=x onerror="window.__xss=2">
The Glorpton harbour crane <img src=x onerror="window.__xss=2"> lifted 7,300 containers in \
June, a record for the port ![t](http://127.0.0.1:9/t.png). <script>window.__xss=1</script>
Harbour officials said the crane ${window.__xss=3} will be serviced in July \
{{constructor.constructor('window.__xss=4')()}} before the autumn season.
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    corpus = seed_corpus(tmp_path)
    (corpus / "harbour.txt").write_text(XSS_ARTICLE, encoding="utf-8")
    proc, url = start_app(tmp_path, corpus)
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def ask(page: Any, question: str, n: int) -> Any:
    """Type `question`, press Enter, and wait for the n-th answer and its sources panel."""
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    page.locator('[data-testid="user"]').nth(n - 1).wait_for(timeout=TIMEOUT_MS)
    # The panel names the question once the final answer is in.
    page.locator('[data-testid="rag-sources"] .rag-question',
                 has_text=question).wait_for(timeout=TIMEOUT_MS)
    return page.locator('[data-testid="bot"]').nth(n - 1)


def test_chat_in_browser(app: str, browser: Any, tmp_path: Path) -> None:
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(app)
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT_MS)

    # A seed question: the answer streams into the chat, the panel marks the quote.
    answer = ask(page, "How many missiles were intercepted?", 1)
    assert "two were intercepted" in answer.inner_text()
    assert "[1]" in answer.inner_text()
    card = page.locator('[data-testid="rag-source"]').first
    assert SEED_TITLE in card.inner_text()
    assert "as of 26 Nov 2024" in card.inner_text()
    mark = card.locator("mark").first
    assert "two were intercepted by the Russians" in mark.inner_text()
    passage = card.locator(".rag-passage").inner_text()
    assert len(passage) > len(mark.inner_text())  # the passage around the quote is shown
    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot), full_page=True)
    if SCREENSHOT:
        shutil.copyfile(shot, ROOT / "docs" / "screenshot.png")

    # The untrusted article: shown as text, never run.
    answer = ask(page, "How many containers did the Glorpton harbour crane lift in June?", 2)
    assert "7,300 containers" in answer.inner_text()
    assert '<img src=x onerror="window.__xss=2">' in answer.inner_text()
    assert answer.locator("img, script").count() == 0  # not even the Markdown image
    for link in answer.locator("a").all():  # a bare URL may be linked, but shows its target
        assert link.inner_text() == link.get_attribute("href")
    card = page.locator('[data-testid="rag-source"]').first
    assert "<script>window.__xss=1</script>Glorpton Harbour Report" in card.inner_text()
    assert "7,300 containers" in card.locator("mark").first.inner_text()
    assert page.locator('[data-testid="rag-sources"] img, [data-testid="rag-sources"] script'
                        ).count() == 0

    # A follow-up leans on this session's conversation.
    ask(page, "Who did Russia order to leave the country on allegations of spying?", 3)
    answer = ask(page, FOLLOW_UP, 4)
    assert "British intelligence" in answer.inner_text()

    # The article list renders the same title as text too.
    page.get_by_role("tab", name="Articles").click()
    page.locator("text=Glorpton Harbour Report >> visible=true").first.wait_for(
        timeout=TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "articles.png"), full_page=True)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []

    # Another browser session has a conversation of its own.
    other = browser.new_context().new_page()
    other.goto(app)
    other.locator("#rag-question textarea").wait_for(timeout=TIMEOUT_MS)
    assert other.locator('[data-testid="user"]').count() == 0
    # Nothing in the articles answers this: said plainly, with the banner.
    answer = ask(other, "What did the French president say about the strikes?", 1)
    assert answer.inner_text().startswith("Not in the articles")
    assert other.locator('[data-testid="rag-abstained"]').count() == 1
    assert other.locator('[data-testid="user"]').count() == 1
    assert "spying" not in other.locator('[data-testid="bot"]').first.inner_text()
    assert page.locator('[data-testid="user"]').count() == 4
