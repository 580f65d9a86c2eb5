"""The Articles tab and a new user's empty index, in a real headless Chromium.

One app over a new index folder and no corpus (`python app.py --index NEWDIR`): it must say
how to add articles, take an upload, list it as a card that reads at 390 px and 1280 px,
and remove it only after a confirmation that names it. Every wait is for a state on the
page, never for a fixed time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_app import ROOT, SEED_TITLE, start_app, stop_app
from test_browser import BROWSER_MARKS, TIMEOUT_MS, browser  # noqa: F401 - the fixture

PHONE, WIDE = {"width": 390, "height": 844}, {"width": 1280, "height": 900}

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("empty-app")
    proc, url = start_app(tmp, None, index="new-index")
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.fixture
def page(empty_app: str, browser: Any) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    page.goto(empty_app)
    page.locator("#rag-question textarea").wait_for(timeout=TIMEOUT_MS)
    yield page
    context.close()


def open_articles(page: Any) -> Any:
    page.get_by_role("tab", name="Articles").click()
    listing = page.locator('[data-testid="rag-articles"]')
    listing.wait_for(timeout=TIMEOUT_MS)
    return listing


def choose(page: Any, titles: list[str]) -> None:
    """Pick these articles in the removal list, each shown as chosen before the next."""
    chooser = page.get_by_label("Articles to remove")
    for title in titles:
        chooser.click()
        page.get_by_role("option", name=title, exact=False).click()
        page.locator(".token", has_text=title).wait_for(timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")


def test_empty_index_guides_then_upload_list_and_confirmed_removal(page: Any,
                                                                   tmp_path: Path) -> None:
    # The chat's first message and the answer to a first question say what to do.
    guide = page.locator("#rag-chat", has_text="upload box")
    guide.wait_for(timeout=TIMEOUT_MS)
    assert "rag index FOLDER --index new-index" in guide.inner_text()
    assert "missile" not in page.locator("#rag-chat").inner_text().lower()
    box = page.locator("#rag-question textarea")
    box.fill("Who won the election?")
    box.press("Enter")
    answer = page.locator('#rag-chat [data-testid="bot"]', has_text="upload box")
    answer.wait_for(timeout=TIMEOUT_MS)
    assert "Error" not in answer.inner_text()

    listing = open_articles(page)
    page.locator('[data-testid="rag-articles"]', has_text="upload box").wait_for(
        timeout=TIMEOUT_MS)
    article = tmp_path / "seed.txt"
    article.write_text((ROOT / "seeds" / "000_1511c0eeef884a91.txt").read_text("utf-8"),
                       encoding="utf-8")
    page.locator('input[type="file"]').set_input_files(str(article))
    card = listing.locator(".rag-art-card", has_text=SEED_TITLE)
    card.wait_for(timeout=TIMEOUT_MS)
    assert "26 Nov 2024" in card.inner_text() and "passages" in card.inner_text()

    # Remove: nothing happens before a confirmation that names the article.
    choose(page, [SEED_TITLE])
    page.locator("#rag-remove").click()
    confirm = page.locator("#rag-confirm", has_text="Remove 1 article from the index?")
    confirm.wait_for(timeout=TIMEOUT_MS)
    assert SEED_TITLE in confirm.inner_text()
    page.locator("#rag-confirm-no").click()
    confirm.wait_for(state="hidden", timeout=TIMEOUT_MS)
    assert card.is_visible()  # cancelled: still listed
    page.locator("#rag-remove").click()
    confirm.wait_for(timeout=TIMEOUT_MS)
    page.locator("#rag-confirm-yes").click()
    card.wait_for(state="detached", timeout=TIMEOUT_MS)
    page.locator('[data-testid="rag-articles"]', has_text="upload box").wait_for(
        timeout=TIMEOUT_MS)  # empty again: the guidance is back


# Once an open defect (CI 2026-12-07): on a busy machine, a refresh that landed after the
# articles were picked emptied the choice, so Remove answered "Nothing selected" and the
# second case's confirmation never came up. Refreshes now keep the choice.
@pytest.mark.parametrize("size", [PHONE, WIDE], ids=["390px", "1280px"])
def test_article_cards_read_at_any_width(page: Any, size: dict[str, int],
                                         tmp_path: Path) -> None:
    page.set_viewport_size(size)
    listing = open_articles(page)
    files = []
    for name, title, source in (("a.md", "Harbour reopens after the storm", "Lindqvist Post"),
                                ("b.md", "Rail strike ends as drivers return", "Daily Bugle")):
        path = tmp_path / name
        path.write_text(f"---\ntitle: {title}\ndate: 2024-06-0{len(files) + 1}\nsource: "
                        f"{source}\n---\n\nThe {title.lower()} story, told on Monday by the "
                        "officials of the port and the railway company.\n", encoding="utf-8")
        files.append(str(path))
    page.locator('input[type="file"]').set_input_files(files)
    cards = listing.locator(".rag-art-card")
    listing.locator(".rag-art-card", has_text="Daily Bugle").wait_for(timeout=TIMEOUT_MS)
    listing.locator(".rag-art-card", has_text="Lindqvist Post").wait_for(timeout=TIMEOUT_MS)
    width = size["width"]
    for card in cards.all():
        title, meta = card.locator(".rag-art-title"), card.locator(".rag-art-meta")
        t, m = title.bounding_box(), meta.bounding_box()
        assert t and m
        assert t["width"] > 0.6 * width - 80, (t, width)  # the title has the card's width
        assert m["y"] >= t["y"] + t["height"] - 1  # details beneath the title
        line = float(meta.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
        assert m["height"] <= 2.5 * line, (m, line)  # not a letter or two per line
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
    # Leave the module's app as it was found.
    choose(page, ["Harbour reopens", "Rail strike ends"])
    page.locator("#rag-remove").click()
    confirm = page.locator("#rag-confirm", has_text="Remove 2 articles")
    try:
        confirm.wait_for(timeout=TIMEOUT_MS)
    except Exception as e:  # say what the page showed instead
        report = page.locator("#rag-articles-report, #rag-confirm").all_inner_texts()
        raise AssertionError(f"no confirmation for 2 articles; the page showed {report}") from e
    page.locator("#rag-confirm-yes").click()
    cards.first.wait_for(state="detached", timeout=TIMEOUT_MS)
