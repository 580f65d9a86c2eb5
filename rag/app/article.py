"""The whole article around a quote, and a conversation exported as Markdown.

Pure functions, like `render`: article text is untrusted and escaped; a quote is marked
only where the article's current text still reads exactly as quoted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rag.app.history import Conversation
from rag.app.render import Resolve, chat_text, esc, highlight, meta_html, published

Span = tuple[int, int, int, str]  # start, end, n, the quoted text


def article_html(article: Any | None, article_id: str, spans: Sequence[Span]) -> str:
    """The article view: title, date, source link and the full text, every span that still
    matches (`text[start:end] == quote`) highlighted; `article` None when it is gone."""
    back = ('<div class="rag-article-bar"><button class="rag-close" type="button">'
            "\u2190 Back to the sources</button></div>")
    if article is None:
        return (f'{back}<div class="rag-stale" data-testid="rag-stale">The article '
                f"<code>{esc(article_id)}</code> is no longer in the index.</div>")
    text: str = article.text
    good = [(s, e, n) for s, e, n, q in spans if text[s:e] == q]
    stale = sorted({n for s, e, n, q in spans if text[s:e] != q})
    notes = ""
    if stale:
        which = ", ".join(f"[{n}]" for n in stale)
        notes = (f'<div class="rag-stale" data-testid="rag-stale">{which}: the article has '
                 "changed since the answer; that quote is no longer in its text.</div>")
    return (f'{back}<h3 class="rag-article-title">{esc(article.title or "(untitled)")}</h3>'
            f'<div class="rag-meta">{meta_html(article)}</div>{notes}'
            f'<div class="rag-article-text">{highlight(text, good)}</div>')


def export_markdown(conv: Conversation, resolve: Resolve) -> str:
    """A conversation as a Markdown document: each question, its answer, and its sources
    with their quotes and links. Article text is escaped (no HTML, no live links but the
    articles' own http(s) addresses), and a quote whose article changed says so."""
    lines = [f"# {chat_text(conv.title)}", "",
             f"_Exported {time.strftime('%d %b %Y')}. Each [n] is a quote from the "
             "source listed under the answer._", ""]
    for t in conv.turns:
        lines += [f"## {chat_text(t.question)}", ""]
        if t.abstained:
            lines += ["Not in the articles." + (f" (Only articles {chat_text(t.filter)}.)"
                                                 if t.filter else ""), ""]
            continue
        if t.short:
            lines += [f"**{chat_text(t.short)}** [{t.short_n}]", ""]
        lines += [chat_text(t.text), ""]
        if t.quotes:
            lines += ["Sources:", ""]
        for q in t.quotes:
            state = resolve(q).state
            where = (f" <{chat_text(q.url)}>" if q.url and q.url.startswith(("http://",
                                                                               "https://"))
                     else f" ({chat_text(q.article_id)})")
            lines.append(f"- [{q.n}] {chat_text(q.title)}, {published(q.published)}{where}")
            lines.append(f"  > \u201c{chat_text(' '.join(q.quote.split()))}\u201d")
            if state != "ok":
                lines.append("  _(The article has changed or is gone since this answer.)_")
        lines.append("")
    return "\n".join(lines)
