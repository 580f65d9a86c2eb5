"""Rendering answers for people: chat text, plain-text sources and the HTML sources panel.

Pure functions. Article text and titles are untrusted: everything put into HTML or Markdown
here goes through `html.escape` first (`gr.HTML` renders what it is given, scripts included).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.ingest.dates import display_date
from rag.results import Answer, Citation, Hit

_MD_LINK = re.compile(r"\]([(:\[])")  # [text](url), ![alt](src), [ref]: url, [text][ref]




def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def chat_text(text: str) -> str:
    """Answer or question text for the Chatbot, which renders Markdown: HTML escaped, and
    Markdown links and images shown as text (an article must not load or hide a URL).

    >>> chat_text("<b>hi</b> ![x](http://e/t.png) [1]")
    '&lt;b&gt;hi&lt;/b&gt; ![x]\\\\(http://e/t.png) [1]'
    """
    return _MD_LINK.sub(r"]\\\1", html.escape(text, quote=False))


def _where(c: Citation | Hit) -> str:
    if c.url:
        return c.url
    return Path(c.path).name if c.path else c.article_id


def sources_text(ans: Answer) -> str:
    """The plain-text "Sources:" section appended to API answers.

    Looks like: '\\n\\nSources:\\n[1] Title (as of 26 Nov 2024; file.txt): “quote”'.
    """
    lines = []
    if ans.citations:
        lines.append("Sources:")
        for c in ans.citations:
            when = display_date(c.published)
            meta = "; ".join(p for p in (f"as of {when}" if when else "", c.source or "",
                                         _where(c)) if p)
            lines.append(f"[{c.n}] {c.title} ({meta}): \u201c{c.quote}\u201d")
    lines += [f"Note: {n}" for n in ans.notes]
    return "\n\n" + "\n".join(lines) if lines else ""


def _link(c: Citation | Hit) -> str:
    url = c.url or ""
    if url.startswith(("http://", "https://")):  # never javascript: or data: links
        return (f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
                f"{esc(url)}</a>")
    return f"<code>{esc(_where(c))}</code>"


def _meta(c: Citation | Hit) -> str:
    when = display_date(c.published)
    parts = [f"as of {esc(when)}" if when else "undated"]
    if c.source:
        parts.append(esc(c.source))
    parts.append(_link(c))
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


def _clip(text: str, limit: int = 420) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " …"


def _card(numbers: str, item: Citation | Hit, body: str) -> str:
    return (f'<div class="rag-source" data-testid="rag-source"><div class="rag-head">'
            f'<span class="rag-n">{numbers}</span> <span class="rag-title">'
            f'{esc(item.title or "(untitled)")}</span></div>'
            f'<div class="rag-meta">{_meta(item)}</div>'
            f'<div class="rag-passage">{body}</div></div>')


def sources_html(ans: Answer, passage: Callable[[Citation], tuple[str, int]]) -> str:
    """The sources panel for `ans`: one card per cited passage, quoted spans in <mark>.

    `passage(c)` gives the text the citation sits in and that text's offset in the article.
    An abstention shows as such, with the nearest passages.
    """
    parts = [f'<div class="rag-question"><b>Sources</b> for \u201c{esc(ans.question)}\u201d'
             "</div>"]
    if ans.abstained:
        parts.append('<div class="rag-abstained" data-testid="rag-abstained"><b>Not in the '
                     "articles.</b> None of the indexed articles answers this; the nearest "
                     "passages were:</div>")
        parts += [_card(f"#{h.rank}", h, esc(_clip(h.text))) for h in ans.hits[:3]]
    groups: dict[tuple[str, str, int], list[Citation]] = {}
    for c in ans.citations:
        text, base = passage(c)
        groups.setdefault((c.article_id, text, base), []).append(c)
    for (_, text, base), cs in groups.items():
        spans = []
        for c in cs:
            start = c.start - base
            if text[start:c.end - base] != c.quote:
                start = text.find(c.quote)
            if start >= 0:
                spans.append((start, start + len(c.quote), c.n))
        numbers = "".join(f"[{c.n}]" for c in cs)
        parts.append(_card(numbers, cs[0], highlight(*excerpt(text, spans))))
    parts += [f'<div class="rag-note">Note: {esc(n)}</div>' for n in ans.notes]
    if ans.dropped:
        parts.append(f'<div class="rag-note">{len(ans.dropped)} sentence(s) of the LLM reply '
                     "were left out: their sources do not support them.</div>")
    return f'<div class="rag-sources" data-testid="rag-sources">{"".join(parts)}</div>'


EMPTY_SOURCES = ('<div class="rag-sources rag-empty" data-testid="rag-sources">Ask a question: '
                 "each [n] in the answer is shown here with the passage it quotes, the quoted "
                 "words highlighted.</div>")


def error_html(message: str) -> str:
    return (f'<div class="rag-sources" data-testid="rag-sources"><div class="rag-error">'
            f"{esc(message)}</div></div>")
