"""Loading articles: the seed shape, every supported format, and the nasty inputs in data/nasty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.ingest.articles import (
    Article,
    Skipped,
    content_hash,
    iter_articles,
    parse_date,
    read_text,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
NASTY = Path(__file__).resolve().parent / "data" / "nasty"
SEED_TITLE = "Russia Claims Two More ATACMS Missile Strikes by Ukraine, Threatens Retaliation"
SEED_STANDFIRST = "Russia’s defence ministry stated that the strikes took place on November 23 and 25"
INVISIBLE = "\u200b\u200c\u200d\ufeff\u2060\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def load(*paths: str | Path) -> list[Article | Skipped]:
    return list(iter_articles(paths))


def one(path: Path) -> Article:
    [item] = load(path)
    assert isinstance(item, Article), item
    return item


def skipped(path: Path) -> Skipped:
    [item] = load(path)
    assert isinstance(item, Skipped), item
    return item


@pytest.fixture(scope="module")
def nasty() -> dict[str, list[Article | Skipped]]:
    """Everything the nasty folder yields, keyed by path relative to the folder (no line no.)."""
    out: dict[str, list[Article | Skipped]] = {}
    for item in iter_articles([NASTY]):
        rel = Path(item.path.rsplit(":", 1)[0] if ".jsonl:" in item.path or ".json:" in item.path
                   else item.path).relative_to(NASTY).as_posix()
        out.setdefault(rel, []).append(item)
    return out


# --- the seed article -------------------------------------------------------------------------


def test_seed_article_is_parsed_into_title_date_and_clean_text() -> None:
    [art] = load(SEEDS)
    assert isinstance(art, Article)
    assert art.id == "000_1511c0eeef884a91.txt"
    assert art.title == SEED_TITLE
    assert art.published == "2024-11-26T19:23:00+05:30"
    lines = art.text.split("\n")
    # Datelines stay in the text so "when was it updated?" can be answered with a quote.
    assert lines[0] == "Published 19:23 IST, November 26th 2024"
    assert lines[1].startswith(SEED_STANDFIRST)
    assert lines[-1] == "Updated 20:11 IST, November 26th 2024"
    assert "Advertisement" not in lines
    assert SEED_TITLE not in art.text  # the headline is the title, not text
    assert lines[2].startswith("Moscow: The Russian military announced")  # paragraphs kept
    assert "'Retaliatory Actions Being Prepared'" in lines  # subheads kept
    assert lines[-2].endswith("summoned the British ambassador to hand over the notice.")
    assert art.path == str(SEEDS / "000_1511c0eeef884a91.txt")
    assert art.source is None and art.url is None
    assert art.content_hash == content_hash(art.title, art.text)


def test_single_file_argument_uses_the_file_name_as_id() -> None:
    art = one(SEEDS / "000_1511c0eeef884a91.txt")
    assert art.id == "000_1511c0eeef884a91.txt"


def test_loading_is_deterministic() -> None:
    assert load(NASTY, SEEDS) == load(NASTY, SEEDS)


# --- the nasty folder ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.txt", "empty file"),
        ("binary.txt", "binary file (NUL bytes)"),
        ("script_only.html", "no article text found in HTML"),
        ("not_supported.pdf", "unsupported file type .pdf"),
        ("README", "unsupported file type (no extension)"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(name: str, reason: str) -> None:
    item = skipped(NASTY / name)
    assert item.reason.startswith(reason)
    assert item.path == str(NASTY / name)


def test_walking_the_nasty_folder_never_raises_and_covers_every_visible_file(nasty) -> None:
    on_disk = {p.relative_to(NASTY).as_posix() for p in NASTY.rglob("*") if p.is_file()}
    assert set(nasty) == on_disk - {".hidden.txt"}  # hidden files are ignored
    assert list(nasty) == sorted(nasty)  # sorted walk, folders in place
    for items in nasty.values():
        for item in items:
            if isinstance(item, Article):
                assert item.text and item.text == item.text.strip()
                assert not set(INVISIBLE) & set(item.text + item.title)
                assert Path(item.path).is_absolute()
            else:
                assert item.reason


def test_cp1252_smart_quotes_decode() -> None:
    art = one(NASTY / "cp1252.txt")
    assert art.title == "Smart quotes survive"
    assert art.text == "“quoted” café owners said on Monday."


def test_mostly_utf8_with_bad_bytes_keeps_the_good_characters() -> None:
    art = one(NASTY / "invalid_utf8.txt")
    assert art.title == "Café owners protest new rules"
    assert "caf\u00e9 said" in art.text and "\ufffd" in art.text  # broken bytes are marked
    assert "Ã" not in art.text  # not decoded as cp1252 mojibake


def test_bom_and_crlf_are_normalised() -> None:
    art = one(NASTY / "bom_crlf.txt")
    assert art.title == "Council approves bridge"  # no BOM glued to the title
    assert art.text == "The council voted on Tuesday.\n\nWork starts in spring."


def test_utf16_with_bom_is_text_not_binary() -> None:
    art = one(NASTY / "utf16.txt")
    assert art.title == "Tokyo markets rally"
    assert art.text == "Shares rose 2% in Tōkyō on Friday."


def test_zero_width_and_bidi_controls_are_removed() -> None:
    art = one(NASTY / "spoof.txt")
    assert art.title == "PayPal security exe.txt notice"
    assert art.text == "The bank said nothing changed. Accounts are safe today."


def test_duplicates_under_two_names_share_a_content_hash() -> None:
    a, b = load(NASTY / "dup_a.txt", NASTY / "dup_b.txt")
    assert isinstance(a, Article) and isinstance(b, Article)
    assert (a.id, b.id) == ("dup_a.txt", "dup_b.txt")
    assert a.content_hash == b.content_hash
    assert a.content_hash != one(NASTY / "cp1252.txt").content_hash


def test_folder_and_file_names_with_spaces_and_accents(nasty) -> None:
    [art] = nasty["dossier é/naïve file.txt"]
    assert isinstance(art, Article)
    assert art.id == "dossier é/naïve file.txt"
    assert art.title == "Naïve résumé rules"
    assert art.path == str(NASTY / "dossier é" / "naïve file.txt")


def test_markdown_front_matter_and_heading() -> None:
    art = one(NASTY / "front_matter.md")
    assert art.title == "Harbour reopens after storm"  # front matter wins over the heading
    assert art.published == "2024-03-05T08:30:00+00:00"
    assert (art.source, art.author) == ("Coastal Times", "Ana Ruiz")
    assert art.url == art.id == "https://example.org/harbour"
    assert art.text.startswith("The harbour reopened on **Tuesday**")
    assert "# Harbour reopens" not in art.text and "---" not in art.text
    assert "# not a title" in art.text  # code blocks are text, not headings


def test_markdown_title_from_first_heading_anywhere() -> None:
    art = one(NASTY / "plain.md")
    assert art.title == "Real heading"
    assert art.text == ("Some intro line without heading that is long enough to be a paragraph "
                        "and ends here.\n\nBody text under the heading.")


def test_json_list_yields_good_items_and_skips_bad_ones(nasty) -> None:
    items = nasty["list.json"]
    assert [type(i).__name__ for i in items] == ["Article", "Article", "Skipped", "Skipped"]
    first, second, third, fourth = items
    assert isinstance(first, Article) and isinstance(second, Article)
    assert (first.id, first.title, first.text) == ("101", "Rail strike ends",
                                                   "Train services resumed on Monday.")
    assert (first.published, first.source) == ("2024-05-06", "Metro")
    assert second.id == second.url == "https://example.net/p"
    assert second.text == "First paragraph.\nSecond paragraph."
    assert third == Skipped(f"{NASTY / 'list.json'}:3", "item 3: no 'text' or 'body' field")
    assert fourth == Skipped(f"{NASTY / 'list.json'}:4", "item 4: not a JSON object")


def test_jsonl_partial_load(nasty) -> None:
    items = nasty["broken.jsonl"]
    path = NASTY / "broken.jsonl"
    arts = [i for i in items if isinstance(i, Article)]
    skips = {i.path: i.reason for i in items if isinstance(i, Skipped)}
    assert [a.id for a in arts] == ["a1", "beir-7", "broken.jsonl#8", "broken.jsonl#9",
                                    "broken.jsonl#10"]
    good = arts[0]
    assert (good.title, good.text, good.url, good.source, good.author) == (
        "Good one", "First good article text.", "https://example.com/a1", "Wire", "Sam Lee")
    assert good.published == "2024-01-02T03:04:05+00:00"
    assert arts[1].text == "Body field works too."  # BEIR-style _id and body
    assert arts[2].text == "Content field, no id or url."
    assert arts[3].published is None  # "not a date" does not crash
    assert (arts[4].title, arts[4].text) == ("Escaped", "Zerowidth escaped too.")
    assert skips[f"{path}:2"].startswith("line 2: invalid JSON (Unterminated string")
    assert skips[f"{path}:3"] == "line 3: no 'text' or 'body' field"
    assert skips[f"{path}:6"] == "line 6: not a JSON object"
    assert skips[f"{path}:7"] == "line 7: no text"
    assert len(items) == 9  # the blank line 4 is neither


def test_html_news_page_text_and_metadata() -> None:
    art = one(NASTY / "news.html")
    assert art.title == "Lighthouse keeper retires after 40 years"
    assert art.published == "2024-06-14T09:15:00+01:00"
    assert art.author == "Maria Lopez"
    assert art.source == "The Harbour Gazette"
    assert art.url == art.id == "https://gazette.example.com/news/lighthouse-keeper"
    assert art.text.startswith("John Pike climbed the 117 steps")
    assert "it was a way of life" in art.text
    for junk in ("alert", "SECRET_TRACKER", "INJECTED_BY_SCRIPT", "display: none", "<p>"):
        assert junk not in art.text


# --- made-up inputs under tmp_path --------------------------------------------------------------


def test_fifty_megabyte_file_loads(tmp_path: Path) -> None:
    para = "The committee met again on Monday and discussed the budget in detail. " * 20
    path = tmp_path / "huge.txt"
    path.write_text("A very long report\n" + (para + "\n") * (50 * 2**20 // len(para) + 1))
    art = one(path)
    assert art.title == "A very long report"
    assert len(art.text) > 49 * 2**20  # only line-end spaces and the title line are gone
    assert art.text.endswith("discussed the budget in detail.")
    assert art.content_hash == content_hash(art.title, art.text)


def test_one_megabyte_single_line_without_punctuation_loads(tmp_path: Path) -> None:
    path = tmp_path / "line.txt"
    path.write_text("word " * 200_000 + "   " * 1000)
    start = time.perf_counter()
    art = one(path)
    assert time.perf_counter() - start < 5  # no regex blow-up on a huge line
    assert art.title == "line"  # too long to be a headline: the stem stands in
    assert art.text == ("word " * 200_000).strip()


@pytest.mark.parametrize("ending", ["...", "\u2026", "?", "!"])
def test_a_headline_is_a_title_however_it_ends(tmp_path: Path, ending: str) -> None:
    """Headlines that trail off ("..." or "…") are titles, with or without a dateline above,
    in every format that can have one; the file name stands in only where none exists."""
    headline = f"Minister says more cuts are coming{ending}"
    body = "The minister announced on Monday that the budget would be cut again."
    (tmp_path / "plain.txt").write_text(f"{headline}\n\n{body}\n")
    (tmp_path / "dated.txt").write_text(
        f"Published 10:00 IST, May 2nd 2024\n{headline}\n{body}\n")
    (tmp_path / "heading.md").write_text(f"# {headline}\n\n{body}\n")
    (tmp_path / "page.html").write_text(
        f"<html><head><title>{headline}</title></head><body><article><h1>{headline}</h1>"
        f"<p>{body} The cuts fall on schools and hospitals first, officials said.</p>"
        "<p>Unions said they would strike if the cuts went ahead as planned this year.</p>"
        "</article></body></html>")
    (tmp_path / "no_headline.txt").write_text(f"{body}\n\nA second paragraph follows.\n")
    titles = {Path(a.path).name: a.title for a in load(tmp_path) if isinstance(a, Article)}
    assert titles == {"plain.txt": headline, "dated.txt": headline, "heading.md": headline,
                      "page.html": headline, "no_headline.txt": "no_headline"}
    dated = one(tmp_path / "dated.txt")
    assert dated.published.startswith("2024-05-02") and headline not in dated.text


def test_title_from_file_name_does_not_enter_the_hash(tmp_path: Path) -> None:
    body = "This paragraph is the whole article and it ends with a period."
    (tmp_path / "one.txt").write_text(body)
    (tmp_path / "two.txt").write_text(body)
    a, b = load(tmp_path)
    assert isinstance(a, Article) and isinstance(b, Article)
    assert (a.title, b.title) == ("one", "two")
    assert a.text == b.text == body
    assert a.content_hash == b.content_hash


def test_boilerplate_lines_are_dropped_but_similar_body_lines_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_text(
        "Published: 08:00 GMT, January 1st 2024\nHeadline here\nFirst paragraph.\n"
        "ADVERTISEMENT\nAlso Read: Some other headline\nStory continues below\n"
        "Subscribe to our newsletter!\nSubscribers complained about the price.\n"
        "Published reports suggest more cuts.\nUpdated 09:00 GMT, January 1st 2024\n"
    )
    art = one(path)
    assert art.published == "2024-01-01T08:00:00+00:00"
    assert art.text == ("Published: 08:00 GMT, January 1st 2024\n"
                        "First paragraph.\nSubscribers complained about the price.\n"
                        "Published reports suggest more cuts.\n"
                        "Updated 09:00 GMT, January 1st 2024")


def test_all_boilerplate_is_no_text(tmp_path: Path) -> None:
    path = tmp_path / "ads.txt"
    path.write_text("Advertisement\n\u200b\nUpdated 20:11 IST, November 26th 2024\n")
    assert skipped(path).reason == "no text"


def test_mostly_control_bytes_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(bytes(range(1, 9)) * 100)
    assert skipped(path).reason == "binary file (mostly non-text bytes)"


def test_whole_json_file_invalid(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"title": "x", "text": ')
    assert skipped(path).reason.startswith("invalid JSON (Expecting value")


def test_single_json_object_uses_file_id(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"title": "T", "text": "Body.", "published": "2024-02-03"}))
    art = one(path)
    assert (art.id, art.title, art.text, art.published) == ("one.json", "T", "Body.", "2024-02-03")


def test_hidden_folders_are_not_walked(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("Hidden\nNever read.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("Visible\nRead this.")
    assert [i.id for i in load(tmp_path) if isinstance(i, Article)] == ["sub/a.txt"]


def test_a_lone_path_string_is_accepted() -> None:
    assert [i.id for i in iter_articles(str(SEEDS))] == ["000_1511c0eeef884a91.txt"]  # type: ignore[arg-type]


# --- errors and helpers -------------------------------------------------------------------------


def test_missing_path_raises_input_error_at_call_time(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="No such file or folder.*nope.*Check the spelling"):
        iter_articles([SEEDS, missing])  # raises before anything is read


def test_read_text_decodes_and_rejects_binary() -> None:
    assert read_text(NASTY / "cp1252.txt") == "Smart quotes survive\n“quoted” café owners said on Monday.\n"
    assert read_text(NASTY / "bom_crlf.txt").startswith("Council approves bridge\nThe council")
    with pytest.raises(InputError, match="binary file"):
        read_text(NASTY / "binary.txt")


def test_content_hash_normalises_whitespace_only() -> None:
    base = content_hash("Title", "One two.\nThree.")
    assert base == content_hash("  Title ", "One   two.\r\n\n Three.  ")
    assert base != content_hash("Title!", "One two.\nThree.")
    assert base != content_hash("Title", "One two. Three!")
    assert base != content_hash("", "Title One two. Three.")  # title and text stay apart
    assert len(base) == 64 and int(base, 16) >= 0


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("19:23 IST, November 26th 2024", "2024-11-26T19:23:00+05:30"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
        ("Mon, 1st Jul 2024 10:00 EDT", "2024-07-01T10:00:00-04:00"),
        ("3 March 2024 14:05 PST", "2024-03-03T14:05:00-08:00"),
        ("2024-05-06", "2024-05-06"),
        ("November 2024", None),
        ("not a date", None),
        ("", None),
        (None, None),
        (20240506, None),
    ],
)
def test_parse_date(raw: object, iso: str | None) -> None:
    assert parse_date(raw) == iso


def test_import_is_light() -> None:
    code = ("import sys, rag.ingest.articles; heavy = {'trafilatura', 'dateutil', 'torch'} & "
            "set(sys.modules); assert not heavy, heavy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
