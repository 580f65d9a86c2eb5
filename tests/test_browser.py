"""The chat in a real headless Chromium (Debian's /usr/bin/chromium via Python Playwright).

One app (seed articles plus an article whose title and body carry <script> and <img
onerror>) serves the whole module; each test opens its own browser context, so its own
localStorage and conversations. Set RAG_SCREENSHOT=1 to refresh docs/screenshot*.png.
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
MISSILES = "How many missiles were intercepted?"
HARBOUR = "How many containers did the Glorpton harbour crane lift in June?"
UNANSWERABLE = "What did the French president say about the strikes?"
DESKTOP, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
# Read at import: conftest.py clears RAG_* variables for each test.
SCREENSHOT = bool(os.environ.get("RAG_SCREENSHOT"))

XSS_ARTICLE = """Published 09:00 IST, June 30th 2024
<script>window.__xss=1</script>Glorpton Harbour Report <img src=x onerror="window.__xss=2">
The Glorpton harbour crane <img src=x onerror="window.__xss=2"> lifted 7,300 containers in \
June, a record for the port ![t](http://127.0.0.1:9/t.png). <script>window.__xss=1</script>
Harbour officials said the crane ${window.__xss=3} will be serviced in July \
{{constructor.constructor('window.__xss=4')()}} before the autumn season.
"""

# Every browser test module's marks (test_browser_articles imports them).
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]
pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("app")
    corpus = seed_corpus(tmp)
    (corpus / "harbour.txt").write_text(XSS_ARTICLE, encoding="utf-8")
    proc, url = start_app(tmp, corpus)
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(app: str, browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own localStorage) on the app, at desktop width."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(app)
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT_MS)
    yield page
    context.close()


def ask(page: Any, question: str, n: int) -> Any:
    """Type `question`, press Enter, and wait for the n-th answer and its sources."""
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    return answered(page, question, n)


def answered(page: Any, question: str, n: int) -> Any:
    """Wait for the n-th answer, to `question`, and its sources; return the answer."""
    page.locator('[data-testid="user"]').nth(n - 1).wait_for(timeout=TIMEOUT_MS)
    page.locator(f'section.rag-turn[data-turn="{n - 1}"] .rag-question',
                 has_text=question).wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator('[data-testid="rag-working"]').wait_for(state="detached", timeout=TIMEOUT_MS)
    return page.locator('[data-testid="bot"]').nth(n - 1)


def shown_cards(page: Any) -> Any:
    return page.locator("section.rag-turn:not([hidden]) .rag-source")


def saved(page: Any) -> str:
    """The conversations as this browser keeps them (encrypted) in localStorage."""
    return str(page.evaluate("localStorage.getItem('rag-conversations') || ''"))


def wait_saved(page: Any, before: str) -> None:
    """Wait until the browser has stored a newer copy of its conversations than `before`
    (an answer is on screen before the browser writes it away)."""
    page.wait_for_function("b => (localStorage.getItem('rag-conversations') || '') !== b",
                           arg=before, timeout=TIMEOUT_MS)


def wait_still(page: Any, selector: str, frames: int = 5) -> None:
    """Wait until the boxes of `selector` stay put for `frames` animation frames in a row
    (rendering and scrolling done): a state on the page, not a fixed time."""
    page.wait_for_function(
        """([sel, frames]) => {
            const now = JSON.stringify([...document.querySelectorAll(sel)].map(e => {
                const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }));
            const w = window;
            w.__ragStill = w.__ragStill && w.__ragStill.sel === sel && w.__ragStill.now === now
                ? {sel, now, n: w.__ragStill.n + 1} : {sel, now, n: 0};
            return w.__ragStill.n >= frames;
        }""", arg=[selector, frames], polling="raf", timeout=TIMEOUT_MS)


def test_citation_opens_its_source_and_the_article(page: Any) -> None:
    answer = ask(page, MISSILES, 1)
    assert "two were intercepted" in answer.inner_text()
    answer.locator('a[href="#rag-cite-0-1"]').last.click()
    card = shown_cards(page).first
    assert "rag-hl" in (card.get_attribute("class") or "")  # the cited card is highlighted
    assert SEED_TITLE in card.inner_text() and "Published 26 Nov 2024" in card.inner_text()
    assert "two were intercepted by the Russians" in card.locator("mark").first.inner_text()
    assert not card.locator(".rag-passage").inner_text().startswith("Published")  # no dateline

    card_text = card.inner_text()
    card.get_by_role("button", name="Open article").click()
    mark = page.locator('[data-testid="rag-article"] mark').first
    mark.wait_for(timeout=TIMEOUT_MS)
    assert "two were intercepted by the Russians" in mark.inner_text()
    view = page.locator('[data-testid="rag-article"]')
    assert SEED_TITLE in view.inner_text() and "Published 26 Nov 2024" in view.inner_text()
    assert len(view.inner_text()) > 3 * len(card_text)  # the whole article
    assert mark.evaluate("m => { const r = m.getBoundingClientRect(); "
                         "return r.top >= 0 && r.bottom <= innerHeight; }")  # in view
    page.get_by_role("button", name="\u2190 Back to the sources").click()
    assert shown_cards(page).first.is_visible()


def test_earlier_answers_keep_their_sources_and_conversations_last(page: Any) -> None:
    ask(page, MISSILES, 1)
    first = saved(page)
    ask(page, HARBOUR, 2)
    assert "Glorpton" in shown_cards(page).first.inner_text()
    page.locator('[data-testid="bot"]').first.click()  # the earlier answer...
    page.locator('section.rag-turn[data-turn="0"]:not([hidden])').wait_for(timeout=TIMEOUT_MS)
    assert SEED_TITLE in shown_cards(page).first.inner_text()  # ...shows its sources
    assert page.locator("section.rag-turn:not([hidden])").count() == 1

    wait_saved(page, first)  # both answers stored before the reload
    page.reload()
    convs = page.locator("#rag-convs")
    convs.get_by_text(MISSILES).wait_for(timeout=TIMEOUT_MS)  # listed after a reload
    page.locator('[data-testid="bot"]').nth(1).wait_for(timeout=TIMEOUT_MS)
    assert "7,300 containers" in page.locator('[data-testid="bot"]').nth(1).inner_text()
    page.locator("#rag-new").click()
    page.locator('[data-testid="bot"]').first.wait_for(state="detached", timeout=TIMEOUT_MS)
    answer = ask(page, "Who did Russia order to leave the country?", 1)
    page.locator('[data-testid="bot"]', has_text="diplomat").wait_for(timeout=TIMEOUT_MS)
    assert "diplomat" in answer.inner_text()
    convs.get_by_text("Who did Russia order").wait_for(timeout=TIMEOUT_MS)
    convs.get_by_text(MISSILES).click()  # switch back
    page.locator('[data-testid="bot"]').nth(1).wait_for(timeout=TIMEOUT_MS)
    page.locator('[data-testid="bot"]', has_text="two were intercepted").first.wait_for(
        timeout=TIMEOUT_MS)
    page.locator("#rag-delete").click()
    convs.get_by_text(MISSILES).wait_for(state="detached", timeout=TIMEOUT_MS)
    assert convs.get_by_text("Who did Russia order").count() == 1  # the other one stays


def test_untrusted_article_is_shown_never_run(page: Any, tmp_path: Path) -> None:
    answer = ask(page, HARBOUR, 1)
    assert "7,300 containers" in answer.inner_text()
    assert '<img src=x onerror="window.__xss=2">' in answer.inner_text()
    assert answer.locator("img, script").count() == 0  # not even the Markdown image
    for link in answer.locator("a").all():  # only [n] links and bare URLs shown as such
        href = link.get_attribute("href") or ""
        assert href.startswith("#rag-cite-") or link.inner_text() == href
    card = shown_cards(page).first
    assert "<script>window.__xss=1</script>Glorpton Harbour Report" in card.inner_text()
    assert "7,300 containers" in card.locator("mark").first.inner_text()
    card.get_by_role("button", name="Open article").click()
    view = page.locator('[data-testid="rag-article"]')
    view.locator("mark").first.wait_for(timeout=TIMEOUT_MS)
    assert "<script>window.__xss=1</script>" in view.inner_text()
    panel = page.locator("#rag-sources-panel")
    assert panel.locator("img, script").count() == 0

    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.locator("#rag-export").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert "7,300 containers" in exported and "## How many containers" in exported
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in exported
    assert "<script" not in exported and "<img" not in exported and "](http" not in exported

    page.get_by_role("tab", name="Articles").click()
    page.locator("text=Glorpton Harbour Report >> visible=true").first.wait_for(
        timeout=TIMEOUT_MS)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []


def test_abstention_and_filter_said_plainly(page: Any) -> None:
    # A new browser session: no one else's conversations.
    assert page.locator("#rag-convs input").count() == 0
    answer = ask(page, UNANSWERABLE, 1)
    assert answer.inner_text().strip() == "Not in the articles."  # once, no bullets
    assert page.locator('[data-testid="rag-abstained"]').count() == 1
    titles = [t.inner_text() for t in page.locator(
        "section.rag-turn:not([hidden]) .rag-title").all()]
    assert titles and len(titles) == len(set(titles))  # each article's title once

    page.get_by_text("Settings").click()
    assert page.get_by_text("Answer mode").count() == 0  # no LLM configured: no choice
    page.locator("#rag-after input, #rag-after textarea").first.fill("2030-01-01")
    answer = ask(page, MISSILES, 2)
    assert "Not in the articles." in answer.inner_text()
    assert "published after 2030-01-01" in answer.inner_text()
    assert "No article matches this filter" in page.locator(
        "section.rag-turn:not([hidden]) [data-testid='rag-abstained']").inner_text()
    retry = page.locator("#rag-unfiltered")
    retry.click()  # asks the last question again by itself
    answer = answered(page, MISSILES, 3)
    assert "two were intercepted" in answer.inner_text()
    assert page.locator("#rag-after input, #rag-after textarea").first.input_value() == ""
    assert not retry.is_visible()


def boxes(page: Any, selector: str) -> list[dict[str, float]]:
    return [b for b in (el.bounding_box() for el in page.locator(selector).all()) if b]


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] - 1 and b["x"] < a["x"] + a["width"] - 1
            and a["y"] < b["y"] + b["height"] - 1 and b["y"] < a["y"] + a["height"] - 1)


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1400px", "390px"])
def test_nothing_overlaps(page: Any, size: dict[str, int], tmp_path: Path) -> None:
    page.set_viewport_size(size)
    ask(page, MISSILES, 1)
    ask(page, "Who lowered the threshold for using nuclear weapons?", 2)
    page.locator("#rag-chat [data-testid='bot'] a[href='#rag-cite-0-1']").last.click()
    selectors = ("#rag-chat .message", "#rag-chat label, #rag-chat .icon-button, "
                 "#rag-chat button:not(.message button)")
    wait_still(page, "#rag-chat .message, " + selectors[1])  # rendered, scrolled
    bubbles, controls = [boxes(page, sel) for sel in selectors]
    assert len(bubbles) >= 4
    for c in controls:
        assert not any(overlap(c, b) for b in bubbles), (c, bubbles, page.evaluate(
            "[...document.querySelectorAll('#rag-chat .icon-button')].map(e => "
            "e.getAttribute('aria-label') + ' ' + e.parentElement.className)"))
    page_controls = boxes(page, "#rag-new, #rag-delete, #rag-export, #rag-question, "
                                "#rag-convs, #rag-chat")
    for i, a in enumerate(page_controls):
        assert not any(overlap(a, b) for b in page_controls[i + 1:]), a
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
    name = "screenshot.png" if size is DESKTOP else "screenshot-phone.png"
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SCREENSHOT:
        shutil.copyfile(tmp_path / name, ROOT / "docs" / name)
