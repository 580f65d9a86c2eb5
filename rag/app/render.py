"""Rendering answers for people: chat Markdown, the sources panel (HTML) and API text.

Pure functions. Article text and titles are untrusted: everything put into HTML or Markdown
here goes through `html.escape` first (`gr.HTML` renders what it is given, scripts included).

The sources panel holds one `<section>` per answer of the conversation; the page's script
shows the one whose answer is selected, so an earlier answer's evidence is one click away.
Each quote is shown only if it still matches its article (`Passage.state`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.app.history import Quote, Turn
from rag.ingest.articles import Article, is_dateline
from rag.ingest.dates import display_date
from rag.results import Answer, Citation, Hit

_MD_LINK = re.compile(r"\]([(:\[])")  # [text](url), ![alt](src), [ref]: url, [text][ref]
_MARK = re.compile(r"\[(\d+)\]")
NOT_IN_ARTICLES = "Not in the articles."
_NEAREST_CHARS = 420  # of each nearest passage under an abstention: about three lines
_NEAREST_PER_ARTICLE = 2


@dataclass(frozen=True)
class Passage:
    """What a stored quote sits in now: the passage text and its offset in the article.

    state "ok": the article still has the quote at its place; "changed": the article's text
    differs there now; "gone": the article is no longer in the index."""

    text: str
    base: int
    state: Literal["ok", "changed", "gone"] = "ok"


Resolve = Callable[[Quote], Passage]


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def chat_text(text: str) -> str:
    """Answer or question text for the Chatbot, which renders Markdown: HTML escaped, and
    Markdown links and images shown as text (an article must not load or hide a URL).

    >>> chat_text("<b>hi</b> ![x](http://e/t.png) [1]")
    '&lt;b&gt;hi&lt;/b&gt; ![x]\\\\(http://e/t.png) [1]'
    """
    return _MD_LINK.sub(r"]\\\1", html.escape(text, quote=False))


def linked(text: str, turn: int, numbers: set[int]) -> str:
    """`chat_text(text)` with each `[n]` of a known citation a link to its source card.

    >>> linked("Two [1]. <x> [9]", 0, {1})
    'Two [[1]](#rag-cite-0-1). &lt;x&gt; [9]'
    """
    out, pos = [], 0
    for m in _MARK.finditer(text):
        if int(m.group(1)) in numbers:
            out += [chat_text(text[pos:m.start()]), f"[[{m.group(1)}]](#rag-cite-{turn}-"
                                                     f"{m.group(1)})"]
            pos = m.end()
    return "".join([*out, chat_text(text[pos:])])


def answer_markdown(t: Turn, turn: int) -> str:
    """An answer as the chat shows it: the short answer in bold first, then the sentences,
    each [n] a link to its card. An abstention is one sentence (its nearest passages are in
    the sources panel), plus which filter was on, if one was."""
    if t.abstained:
        text = NOT_IN_ARTICLES
        if t.filter:
            text += (f" Only articles {chat_text(t.filter)} were searched; use **Ask without "
                     "the filter** below to search them all.")
        return text
    numbers = {q.n for q in t.quotes}
    parts = []
    if t.short:
        parts.append(f"**{chat_text(t.short)}** {linked(f'[{t.short_n}]', turn, numbers)}")
    parts.append(linked(t.text, turn, numbers))
    if t.filter:
        parts.append(f"_Only articles {chat_text(t.filter)}._")
    parts += [f"_Note: {chat_text(n)}_" for n in t.notes]
    return "\n\n".join(parts)


def published(when: str | None) -> str:
    """The label of a publication date.

    >>> published("2024-11-26T19:23:00+05:30"), published(None)
    ('Published 26 Nov 2024', 'Undated')
    """
    shown = display_date(when)
    return f"Published {shown}" if shown else "Undated"


def _link(url: str | None, fallback: str) -> str:
    if url and url.startswith(("http://", "https://")):  # never javascript: or data: links
        return (f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
                f"{esc(url)}</a>")
    return f"<code>{esc(fallback)}</code>"


def meta_html(q: Quote | Citation | Hit | Article) -> str:
    """ "Published 26 Nov 2024 · Reuters · https://…" for a card or the article view."""
    parts = [esc(published(q.published))]
    if q.source:
        parts.append(esc(q.source))
    ident = q.id if isinstance(q, Article) else q.article_id
    parts.append(_link(q.url, q.url or ident))
    return " · ".join(parts)


def highlight(passage: str, spans: Sequence[tuple[int, int, int]]) -> str:
    """`passage` escaped, with each (start, end, n) span wrapped in <mark> and numbered.

    >>> highlight("a <b> c", [(2, 5, 1)])
    'a <mark>&lt;b&gt;</mark><sup class="rag-sup">[1]</sup> c'
    """
    out, pos = [], 0
    for start, end, n in sorted(spans):
        if start < pos or not 0 <= start < end <= len(passage):
            continue  # overlapping or out of range: leave unmarked
        out.append(esc(passage[pos:start]))
        out.append(f"<mark>{esc(passage[start:end])}</mark><sup class=\"rag-sup\">[{n}]</sup>")
        pos = end
    out.append(esc(passage[pos:]))
    return "".join(out)


def excerpt(passage: str, spans: Sequence[tuple[int, int, int]],
            context: int = 260) -> tuple[str, list[tuple[int, int, int]]]:
    """Trim a long passage to the quoted spans plus about `context` characters either side,
    cut at a line or sentence break where one is near (else between words); "…" marks
    what was cut.

    >>> excerpt("One. Two. Three. Four.", [(5, 9, 1)], context=3)
    ('… Two. …', [(2, 6, 1)])
    """
    if not spans:
        return passage, []
    lo, hi = min(s for s, _, _ in spans), max(e for _, e, _ in spans)
    a, b = max(0, lo - context), min(len(passage), hi + context)
    if a > 0:
        breaks = [i + 1 for i in (passage.find("\n", a, lo), passage.find(". ", a, lo)) if i >= 0]
        a = min(breaks) if breaks else max(passage.find(" ", a, lo), a - 1) + 1
    if b < len(passage):
        breaks = [i + 1 for i in (passage.rfind("\n", hi, b), passage.rfind(". ", hi, b))
                  if i >= 0]
        b = max(breaks) if breaks else (passage.rfind(" ", hi, b) if " " in passage[hi:b] else b)
    head, tail = ("… " if a > 0 else ""), (" …" if b < len(passage) else "")
    body = passage[a:b]
    strip = len(body) - len(body.lstrip())
    body = body.strip()
    shift = len(head) - a - strip
    return head + body + tail, [(s + shift, e + shift, n) for s, e, n in spans]


def clip(text: str, limit: int = _NEAREST_CHARS) -> str:
    """`text` cut at a word boundary before `limit` characters, "…" marking the cut.

    >>> clip("Moscow said two were intercepted", 12)
    'Moscow said …'
    """
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip() + " …"


def skip_datelines(text: str) -> int:
    """How many leading characters of a passage are dateline lines ("Published 09:00 IST,
    June 30th 2024"), shown as the card's date instead of as passage text.

    >>> skip_datelines("Published 09:00 IST, June 30th 2024\\nThe crane lifted boxes.")
    36
    """
    pos = 0
    while True:
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if end < 0 or not (is_dateline(line) or not line.strip()):
            return pos
        pos = end + 1


def _open_button(article_id: str, quotes: Sequence[Quote]) -> str:
    spans = [[q.start, q.end, q.n, q.quote] for q in quotes]
    return (f'<button class="rag-open" type="button" data-article="{esc(article_id)}" '
            f'data-spans="{esc(json.dumps(spans, ensure_ascii=False))}">Open article</button>')


def _card(turn: int, numbers: Sequence[int], q: Quote, body: str, extra: str = "",
          quotes: Sequence[Quote] = ()) -> str:
    ids = " ".join(str(n) for n in numbers)
    label = "".join(f"[{n}]" for n in numbers)
    anchor = f' id="rag-src-{turn}-{numbers[0]}"' if numbers else ""
    return (f'<div class="rag-source" data-testid="rag-source" data-cites="{ids}"{anchor}>'
            f'<div class="rag-head"><span class="rag-n">{label}</span> <span class="rag-title">'
            f'{esc(q.title or "(untitled)")}</span></div>'
            f'<div class="rag-meta">{meta_html(q)}</div>{extra}'
            f'<div class="rag-passage">{body}</div>'
            f'<div class="rag-actions">{_open_button(q.article_id, quotes or [q])}</div></div>')


_CHANGED = ('<div class="rag-stale" data-testid="rag-stale">The article has changed since '
            "this answer: the quote is shown as it was, not highlighted in the new text.</div>")
_GONE = ('<div class="rag-stale" data-testid="rag-stale">This article is no longer in the '
         "index: the quote is shown as it was.</div>")


def _cited_cards(t: Turn, turn: int, resolve: Resolve) -> list[str]:
    """One card per article (its title once), holding each passage quoted from it; several
    [n] in one passage share that passage."""
    articles: dict[str, dict[tuple[str, int, str], list[Quote]]] = {}
    for q in t.quotes:
        p = resolve(q)
        articles.setdefault(q.article_id, {}).setdefault((p.text, p.base, p.state),
                                                         []).append(q)
    cards = []
    for passages in articles.values():
        bodies, notices, numbers = [], "", []
        for (text, base, state), qs in passages.items():
            numbers += [q.n for q in qs]
            bodies.append(_passage_body(text, base, state, qs))
            if state != "ok":
                notices = _CHANGED if state == "changed" else _GONE
        quotes = [q for qs in passages.values() for q in qs]
        cards.append(_card(turn, sorted(numbers), quotes[0], '<hr class="rag-gap">'.join(bodies),
                           notices, quotes))
    return cards


def _passage_body(text: str, base: int, state: str, qs: Sequence[Quote]) -> str:
    """One quoted passage: an excerpt with the quotes marked, or the quotes as they were."""
    if state != "ok":
        return "<br>".join(f"[{q.n}] \u201c{esc(q.quote)}\u201d" for q in qs)
    skip = skip_datelines(text)
    if any(q.start - base < skip for q in qs):
        skip = 0  # the quote is the dateline itself ("when was it published?")
    spans = [(q.start - base - skip, q.end - base - skip, q.n) for q in qs]
    return highlight(*excerpt(text[skip:], spans))


def _nearest_cards(t: Turn, turn: int, resolve: Resolve) -> list[str]:
    """An abstention's nearest passages: one card per article (its title once)."""
    by_article: dict[str, list[Quote]] = {}
    for q in t.nearest:
        by_article.setdefault(q.article_id, []).append(q)
    cards = []
    for qs in by_article.values():
        shown = []
        for q in qs[:_NEAREST_PER_ARTICLE]:
            p = resolve(q)
            text = p.text if p.state == "ok" else q.quote
            shown.append(esc(clip(" ".join(text[skip_datelines(text):].split()))))
        cards.append(_card(turn, [], qs[0], '<hr class="rag-gap">'.join(shown), quotes=[]))
    return cards


def turn_html(t: Turn, turn: int, resolve: Resolve, visible: bool) -> str:
    """The sources of one answer: a section of the panel."""
    parts = [f'<div class="rag-question"><b>Sources</b> for \u201c{esc(t.question)}\u201d</div>']
    if t.abstained:
        why = f" published {esc(t.filter.removeprefix('published '))}" if t.filter else ""
        more = ("The nearest passages:" if t.nearest else
                "No article matches this filter." if t.filter else "No passage came close.")
        parts.append(f'<div class="rag-abstained" data-testid="rag-abstained"><b>Not in the '
                     f"articles{why}.</b> {more}</div>")
        parts += _nearest_cards(t, turn, resolve)
    else:
        parts += _cited_cards(t, turn, resolve)
    parts += [f'<div class="rag-note">Note: {esc(n)}</div>' for n in t.notes]
    if t.dropped:
        parts.append(f'<div class="rag-note">{t.dropped} sentence(s) of the LLM reply were '
                     "left out: their sources do not support them.</div>")
    hidden = "" if visible else " hidden"
    return f'<section class="rag-turn" data-turn="{turn}"{hidden}>{"".join(parts)}</section>'


def panel_html(turns: Sequence[Turn], resolve: Resolve, selected: int | None = None,
               extra: str = "") -> str:
    """The sources panel for a conversation: every answer's section, `selected` (default
    the last) shown. `extra` (already HTML) goes first, e.g. a working state."""
    if not turns and not extra:
        return EMPTY_SOURCES
    shown = len(turns) - 1 if selected is None else selected
    body = "".join(turn_html(t, i, resolve, i == shown and not extra)
                   for i, t in enumerate(turns))
    return (f'<div class="rag-sources" data-testid="rag-sources">{extra}{body}'
            '<div class="rag-article" data-testid="rag-article" hidden></div></div>')


WORKING = ('<div class="rag-working" data-testid="rag-working"><span class="rag-spinner">'
           "</span>{what}</div>")


def working_html(what: str) -> str:
    """The visible working state while an answer is computed."""
    return WORKING.format(what=esc(what))


def sources_text(ans: Answer) -> str:
    """The plain-text "Sources:" section appended to API answers.

    Looks like: '\\n\\nSources:\\n[1] Title (Published 26 Nov 2024; file.txt): “quote”'.
    """
    lines = []
    if ans.citations:
        lines.append("Sources:")
        for c in ans.citations:
            where = c.url or (Path(c.path).name if c.path else c.article_id)
            meta = "; ".join(p for p in (published(c.published) if c.published else "",
                                         c.source or "", where) if p)
            lines.append(f"[{c.n}] {c.title} ({meta}): \u201c{c.quote}\u201d")
    lines += [f"Note: {n}" for n in ans.notes]
    return "\n\n" + "\n".join(lines) if lines else ""


EMPTY_SOURCES = ('<div class="rag-sources rag-empty" data-testid="rag-sources">Ask a question: '
                 "each [n] in the answer is shown here with the passage it quotes, the quoted "
                 "words highlighted. Click an earlier answer to see its sources again.</div>")


def error_html(message: str) -> str:
    return (f'<div class="rag-sources" data-testid="rag-sources"><div class="rag-error">'
            f"{esc(message)}</div></div>")
