"""Articles: reading files of every supported format into `Article` values.

`iter_articles(paths)` walks files and folders (sorted, hidden entries skipped) and yields one
`Article` per article found, or a `Skipped` saying why a file or a JSON record was left out.
Formats: .txt, .md, .html/.htm, .json (object or list), .jsonl. Only a missing path raises.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rag.ingest.decode import _INVISIBLE, Unreadable, _decode, read_text
from rag.ingest.files import Skipped, iter_files, shown


@dataclass(frozen=True)
class Article:
    """One article. `text` is what chunks and citations index into (offsets are into it)."""

    id: str
    title: str
    text: str
    published: str | None = None  # ISO-8601 where the source gave a date
    source: str | None = None
    url: str | None = None
    path: str | None = None
    author: str | None = None
    content_hash: str = ""


SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
MAX_FILE_BYTES = 256 * 1024 * 1024  # one file is held in memory at a time; cap what that means

_SPACE = re.compile(r"\s")
_HOURS = {"IST": 5.5, "GMT": 0, "UTC": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
          "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2, "BST": 1, "EET": 2, "EEST": 3,
          "MSK": 3, "JST": 9, "AEST": 10, "AEDT": 11}  # IST is India's (the seed articles')
_TZINFOS = {name: int(hours * 3600) for name, hours in _HOURS.items()}  # dateutil wants ints
_ORDINAL = re.compile(r"(?<=\d)(?:st|nd|rd|th)\b", re.IGNORECASE)
# Two parse defaults differing in date and hour: a field that differs was not in the string.
_DEFAULT_A = datetime(2000, 1, 1, 0)
_DEFAULT_B = datetime(2001, 2, 2, 1)

_DATELINE = re.compile(
    r"(published|posted|updated|last updated)(?: on| at)?:? +(?P<date>[^\n]{1,80})",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    r"(?:advertisements?|ad|sponsored(?: content)?|story continues below(?: advertisement)?"
    r"|continue reading below|scroll to continue(?: with content)?|read more"
    r"|also read(?: *[:|\-\u2013\u2014].{0,200})?|subscribe\b.{0,120})[.!:]?",
    re.IGNORECASE,
)
_FRONT_MATTER = re.compile(r"---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_TEXT_KEYS = ("text", "body", "content")


@dataclass(frozen=True)
class _File:
    path: Path  # absolute
    rel: str  # relative to the folder argument, or the file name for a file argument


def iter_articles(paths: Iterable[str | os.PathLike[str]], *,
                  follow_links: bool = False) -> Iterator[Article | Skipped]:
    """Yield an `Article` (or a `Skipped` with the reason) for every article under `paths`.

    Each path is a file or a folder (walked recursively in sorted order; hidden files and
    folders such as .git are ignored). Files are read one at a time. Bad content, bad names,
    links and parser failures never raise: that file is skipped with its reason. Symbolic
    links leading out of a folder are skipped unless `follow_links`. A path that does not
    exist raises `InputError`, before anything is yielded.
    """
    files = iter_files(paths, follow_links=follow_links)  # checks the roots now
    return _iter_articles(files)


def _iter_articles(files: Iterator[tuple[Path, str] | Skipped]) -> Iterator[Article | Skipped]:
    for item in files:
        if isinstance(item, Skipped):
            yield item
        else:
            yield from articles_in_file(*item)


def articles_in_file(path: Path, rel: str) -> Iterator[Article | Skipped]:
    """The articles in one file (`rel`: its name relative to the folder given), or why not.
    Never raises: a parser bug or a missing library skips this file with the reason."""
    f = _File(path.absolute(), rel)
    try:
        str(f.path).encode("utf-8")
    except UnicodeEncodeError:  # it could be neither stored nor shown as given
        yield Skipped(shown(f.path), "the path is not valid UTF-8; rename it (e.g. with convmv)")
        return
    suffix = f.path.suffix.lower()
    parse = _PARSERS.get(suffix)
    if parse is None:
        kind = suffix or "(no extension)"
        yield Skipped(shown(f.path), f"unsupported file type {kind} (use one of: "
                      f"{', '.join(SUPPORTED_SUFFIXES)})")
        return
    try:
        yield from parse(_read(f.path), f)
    except Unreadable as e:
        yield Skipped(shown(f.path), str(e))
    except Exception as e:  # a parser bug or a broken library costs this file, not the run
        yield Skipped(shown(f.path), f"could not be parsed ({type(e).__name__}: {e})")


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise Unreadable(f"file too large ({size // 2**20} MB, limit {MAX_FILE_BYTES // 2**20} "
                        "MB); split it into one file per article")
        data = path.read_bytes()
    except OSError as e:
        raise Unreadable(f"cannot read file ({e.strerror or e})") from None
    if not data or data.isspace():  # isspace, not strip: no copy of a 50 MB file
        raise Unreadable("empty file")
    text = _decode(data)
    if not text or text.isspace():
        raise Unreadable("no text")
    return text


def content_hash(title: str, text: str) -> str:
    """sha256 hex of the title and text with whitespace runs collapsed and ends stripped.

    The file name plays no part, so one article saved under two names hashes the same:
    >>> content_hash("A  title", "Body\\r\\n text") == content_hash("A title", "Body text")
    True
    """
    digest = hashlib.sha256(" ".join(title.split()).encode("utf-8") + b"\n")
    for i, words in enumerate(_words_in_blocks(text)):
        digest.update((" " if i else "").encode() + words.encode("utf-8"))
    return digest.hexdigest()


def _words_in_blocks(text: str, block: int = 1 << 20) -> Iterator[str]:
    """' '.join(text.split()) in pieces, so a 50 MB text never becomes a list of 8M words."""
    start = 0
    while start < len(text):
        m = _SPACE.search(text, min(start + block, len(text)))
        end = m.start() if m else len(text)
        if words := text[start:end].split():
            yield " ".join(words)
        start = end + 1


def parse_date(value: object) -> str | None:
    """ISO-8601 for a date string; None if it cannot be read (a date without a year too).

    >>> parse_date("19:23 IST, November 26th 2024")
    '2024-11-26T19:23:00+05:30'
    >>> parse_date("26 Nov 2024"), parse_date("November"), parse_date("soon")
    ('2024-11-26', None, None)
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        return None
    from dateutil import parser  # imported on first use: keeps `import rag` fast

    text = _ORDINAL.sub("", value.strip())
    try:
        with warnings.catch_warnings():  # unknown zone names warn; we accept the naive time
            warnings.simplefilter("ignore")
            a = parser.parse(text, default=_DEFAULT_A, tzinfos=_TZINFOS)
            b = parser.parse(text, default=_DEFAULT_B, tzinfos=_TZINFOS)
    except (ValueError, OverflowError, TypeError):
        return None
    if a.date() != b.date():  # year, month or day missing: no date worth reporting
        return None
    if a.hour != b.hour:  # no time of day given
        return str(a.date().isoformat())  # str(): dateutil is untyped
    return str(a.isoformat(timespec="seconds"))


def _make(f: _File, *, title: str, text: str, ident: str | None = None,
          title_from_name: bool = False, published: str | None = None,
          source: str | None = None, url: str | None = None,
          author: str | None = None) -> Article:
    title = " ".join(_INVISIBLE.sub("", title).split())
    text = _tidy(text)  # callers pass text already cleaned of invisibles (once: 50 MB files)
    if not text:
        raise Unreadable("no text")
    return Article(
        id=ident or url or f.rel, title=title, text=text, published=published,
        source=source, url=url, path=str(f.path), author=author,
        # A title made up from the file name is not content: keep duplicates detectable.
        content_hash=content_hash("" if title_from_name else title, text),
    )


def _tidy(text: str) -> str:
    """Strip line ends and collapse runs of blank lines (line by line: no regex backtracking)."""
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n\n\n+", "\n\n", text).strip()  # 10x faster than \n{3,} on big text


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _boilerplate(line: str) -> bool:
    return len(line) < 300 and _BOILERPLATE.fullmatch(line.strip()) is not None


def is_dateline(line: str) -> bool:
    """A line saying when the story was published or updated.

    >>> is_dateline("Published 19:23 IST, November 26th 2024"), is_dateline("Published by Reuters")
    (True, False)
    """
    return _dateline(line) is not None


def _dateline(line: str) -> re.Match[str] | None:
    """A 'Published 19:23 IST, November 26th 2024' line (it has a digit; it is short)."""
    m = _DATELINE.fullmatch(line.strip()) if len(line) <= 120 else None
    return m if m and any(c.isdigit() for c in m["date"]) else None


def _split_title(lines: list[str], f: _File) -> tuple[str, bool, list[str]]:
    """(title, title_from_name, rest): a short first line that is not a sentence (no final
    full stop; an ellipsis, "..." or "…", is none: a headline that trails off is still a
    headline) is the headline; otherwise there is none, the stem stands in, all is text."""
    first = lines[0].strip() if lines else ""
    sentence = first.endswith(".") and not first.endswith("...")
    if len(lines) > 1 and 0 < len(first) < 200 and not sentence:
        return first.lstrip("#").strip(), False, _trim(lines[1:])
    return f.path.stem, True, lines


def _parse_txt(text: str, f: _File) -> Iterator[Article]:
    lines = _trim([ln for ln in text.split("\n") if not _boilerplate(ln)])
    published = None
    head: list[str] = []
    # Datelines sit at the very top of the seed shape. They stay in the text (a reader may
    # ask when the story was published or updated, and the answer must quote it), but
    # they are not the headline.
    while lines and (m := _dateline(lines[0])):
        if published is None and m[1].lower() in ("published", "posted"):
            published = parse_date(m["date"])
        head.append(lines[0].strip())
        lines = _trim(lines[1:])
    title, from_name, body = _split_title(lines, f)
    has_body = any(ln.strip() and not _dateline(ln) for ln in body)
    yield _make(f, title=title, text="\n".join(head + body) if has_body else "",
                title_from_name=from_name, published=published)


def _parse_md(text: str, f: _File) -> Iterator[Article]:
    meta: dict[str, str] = {}
    m = _FRONT_MATTER.match(text[:65536])
    if m:
        for line in m[1].split("\n"):
            key, sep, value = line.partition(":")
            if sep and key.strip() and not key[0].isspace() and key[0] not in "-#":
                meta[key.strip().lower()] = value.strip().strip("'\"")
        text = text[m.end():]
    lines, heading, fenced = text.split("\n"), None, False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced  # a '# comment' in a code block is not the title
        elif not fenced and line.startswith("# "):
            heading = i
            break
    if heading is not None:
        title, from_name, body = lines.pop(heading)[2:].strip().rstrip("#").strip(), False, lines
    else:
        title, from_name, body = _split_title(_trim(lines), f)
    if meta.get("title"):
        title, from_name = meta["title"], False
    url = meta.get("url") or meta.get("link")
    yield _make(f, title=title, text="\n".join(body), ident=meta.get("id") or url,
                title_from_name=from_name, url=url, source=meta.get("source"),
                author=meta.get("author"),
                published=parse_date(meta.get("date") or meta.get("published")))


def _parse_html(text: str, f: _File) -> Iterator[Article]:
    try:
        import trafilatura  # heavy (~0.3 s): imported only when an HTML file shows up
    except ImportError as e:  # e.g. lxml without lxml_html_clean: only HTML files need it
        raise Unreadable(f"HTML support is not installed ({e}); run `pip install trafilatura "
                    "lxml_html_clean` and index again") from None

    try:
        doc: Any = trafilatura.bare_extraction(
            text, with_metadata=True, include_comments=False,
            date_extraction_params={"outputformat": "%Y-%m-%dT%H:%M:%S%z", "original_date": True},
        )
    except Exception as e:
        raise Unreadable(f"could not parse HTML ({type(e).__name__}: {e})") from None
    lines = _trim(((getattr(doc, "text", None) or "") if doc is not None else "").split("\n"))
    title = _INVISIBLE.sub("", getattr(doc, "title", None) or "").strip()
    if lines and title and lines[0].strip() == title:  # trafilatura repeats the <h1>
        lines = _trim(lines[1:])
    if not lines:
        raise Unreadable("no article text found in HTML")
    date = getattr(doc, "date", None) or ""
    if date.endswith("T00:00:00"):  # htmldate found a day only; do not invent a midnight
        date = date[:10]
    text = _INVISIBLE.sub("", "\n".join(lines))  # entities such as &#8203; decode to them
    yield _make(f, title=title or f.path.stem, text=text, title_from_name=not title,
                url=getattr(doc, "url", None) or None, author=getattr(doc, "author", None),
                source=getattr(doc, "sitename", None) or getattr(doc, "hostname", None),
                published=parse_date(date))


def _parse_json(text: str, f: _File) -> Iterator[Article | Skipped]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Unreadable(f"invalid JSON ({_json_error(e)})") from None
    if isinstance(data, list):
        for n, item in enumerate(data, start=1):
            yield _record(item, f, where=f"item {n}", fallback_id=f"{f.rel}#{n}")
    else:
        yield _record(data, f, where="", fallback_id=f.rel)


def _parse_jsonl(text: str, f: _File) -> Iterator[Article | Skipped]:
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:
            yield Skipped(f"{shown(f.path)}:{n}", f"line {n}: invalid JSON ({_json_error(e)})",
                          shown(f.path))
            continue
        yield _record(obj, f, where=f"line {n}", fallback_id=f"{f.rel}#{n}")


def _json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg}: column {e.colno}"
    return "nested too deeply" if isinstance(e, RecursionError) else str(e)[:100]


def _record(obj: object, f: _File, *, where: str, fallback_id: str) -> Article | Skipped:
    """One JSON object -> Article; `where` ('line 7', 'item 2' or '') prefixes skip reasons."""
    path = f"{shown(f.path)}:{where.split()[-1]}" if where else shown(f.path)
    prefix = f"{where}: " if where else ""
    if not isinstance(obj, dict):
        return Skipped(path, f"{prefix}not a JSON object", shown(f.path))
    if not any(k in obj for k in _TEXT_KEYS):
        return Skipped(path, f"{prefix}no 'text' or 'body' field", shown(f.path))
    text = next((t for k in _TEXT_KEYS if isinstance(t := obj.get(k), str) and t), "")
    text = _INVISIBLE.sub("", text)  # JSON escapes such as \u200b decode to them
    url = _as_str(obj.get("url")) or _as_str(obj.get("link"))
    try:
        return _make(
            f, title=_as_str(obj.get("title")) or _as_str(obj.get("headline")) or "", text=text,
            ident=_as_str(obj.get("id")) or _as_str(obj.get("_id")) or url or fallback_id,
            url=url, source=_as_str(obj.get("source")), author=_as_str(obj.get("author")),
            published=parse_date(next((obj[k] for k in ("published", "date") if obj.get(k)),
                                      None)),
        )
    except Unreadable as e:
        return Skipped(path, f"{prefix}{e}", shown(f.path))


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


_PARSERS: dict[str, Callable[[str, _File], Iterator[Article | Skipped]]] = {
    ".txt": _parse_txt, ".md": _parse_md, ".html": _parse_html, ".htm": _parse_html,
    ".json": _parse_json, ".jsonl": _parse_jsonl,
}


__all__ = ["MAX_FILE_BYTES", "SUPPORTED_SUFFIXES", "Article", "Skipped", "articles_in_file",
           "content_hash", "is_dateline", "iter_articles", "iter_files", "parse_date",
           "read_text", "shown"]
