"""What the `rag` command prints: article text made safe for a terminal, whole-word
snippets, and answers as text or as the `rag ask --json` object."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """Article text with terminal control sequences removed (articles are untrusted).

    >>> safe("ok\\x1b[31mred")
    'ok[31mred'
    """
    return _CONTROL.sub("", text)


SNIPPET_CHARS = 400  # of each passage in `rag search`: about five terminal lines


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text` cut between words before `limit` characters, "…" marking the cut, as the
    chat's cards cut it.

    >>> snippet("Two were intercepted by the Russians", 22)
    'Two were intercepted …'
    """
    from rag.app.render import clip  # light: no gradio

    return clip(text, limit)


def print_answer(ans: Any) -> None:
    from rag.ingest.dates import display_date

    if ans.short is not None:
        # The short answer first: the phrase the cited sentence gives, then the sentence.
        print(f"{safe(ans.short.text)} [{ans.short.n}]\n")
    print(safe(ans.text))
    for note in ans.notes:
        print(f"note: {safe(note)}", file=sys.stderr)
    if ans.citations:
        print("\nSources:")
        for c in ans.citations:
            when = display_date(c.published)
            where = c.url or c.path or c.article_id
            print(f"[{c.n}] {safe(c.title)}{f', published {when}' if when else ''} ({safe(where)})")
            print(f"    \u201c{safe(c.quote)}\u201d (chars {c.start}-{c.end})")
    for d in ans.dropped:
        print(f"dropped (not supported by its source): {safe(d)}", file=sys.stderr)


def answer_json(ans: Any) -> dict[str, Any]:
    ckeys = ("n", "article_id", "title", "published", "source", "url", "path", "quote",
             "start", "end")
    return {
        "answer": ans.text, "abstained": ans.abstained,
        "citations": [{k: d[k] for k in ckeys} for d in map(asdict, ans.citations)],
        "hits": [asdict(h) for h in ans.hits], "mode": ans.mode, "confidence": ans.confidence,
        "dropped": list(ans.dropped), "notes": list(ans.notes),
        "short": asdict(ans.short) if ans.short is not None else None,
    }
