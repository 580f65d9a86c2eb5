"""Conversations as the browser keeps them: every answer with its evidence, as plain JSON.

The server keeps no conversation. Each browser holds its own `Store` (in localStorage, via
`gr.BrowserState`) and sends it with each request; so nothing of one user's conversations
can reach another session. A stored quote is re-checked against the article's current text
whenever it is shown (see `Service.resolve`), so an old answer never highlights words an
edited article no longer has.

Reading is forgiving: a store written by an older version (missing or unknown fields) loads
with defaults rather than failing, because it lives in a browser we cannot migrate.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rag.results import Answer, Citation, Hit

# Conversations kept per browser: localStorage holds about 5 MB per site, a conversation
# of 20 answers about 60 KB (measured on the seed answers with their quotes), so 50 of
# those fit with room to spare. The oldest go first.
MAX_CONVERSATIONS = 50
MAX_TURNS = 200  # answers kept per conversation
_TITLE_CHARS = 60


@dataclass(frozen=True)
class Quote:
    """A quoted span (or, for an abstention, a nearest passage) and where it came from.

    `quote == article.text[start:end]` when it was stored; `chunk_start`/`chunk_end` is the
    passage around it (0, 0 when unknown)."""

    n: int
    article_id: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    quote: str
    start: int
    end: int
    chunk_start: int = 0
    chunk_end: int = 0

    @classmethod
    def of_citation(cls, c: Citation) -> Quote:
        return cls(c.n, c.article_id, c.title, c.published, c.source, c.url, c.quote,
                   c.start, c.end, c.chunk_start, c.chunk_end)

    @classmethod
    def of_hit(cls, h: Hit) -> Quote:
        return cls(h.rank, h.article_id, h.title, h.published, h.source, h.url, h.text,
                   h.start, h.end, h.start, h.end)


@dataclass(frozen=True)
class Turn:
    """One question and its answer, with everything needed to show its evidence later."""

    question: str
    text: str
    abstained: bool = False
    quotes: tuple[Quote, ...] = ()
    nearest: tuple[Quote, ...] = ()  # an abstention's nearest passages
    short: str = ""  # the short answer, shown first
    short_n: int = 0
    notes: tuple[str, ...] = ()
    dropped: int = 0  # LLM sentences left out as unsupported
    filter: str = ""  # the active filter in words, e.g. "published after 2030-01-01"

    @classmethod
    def of_answer(cls, ans: Answer, filter_label: str = "") -> Turn:
        short = getattr(ans, "short", None)
        return cls(
            question=ans.question, text=ans.text, abstained=ans.abstained,
            quotes=tuple(Quote.of_citation(c) for c in ans.citations),
            nearest=tuple(Quote.of_hit(h) for h in ans.hits) if ans.abstained else (),
            short=short.text if short else "", short_n=short.n if short else 0,
            notes=tuple(ans.notes), dropped=len(ans.dropped), filter=filter_label)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Turn:
        quotes = tuple(_load(Quote, q) for q in d.get("quotes") or ())
        nearest = tuple(_load(Quote, q) for q in d.get("nearest") or ())
        t: Turn = _load(cls, {k: v for k, v in d.items() if k not in ("quotes", "nearest")})
        return replace(t, quotes=quotes, nearest=nearest, notes=tuple(t.notes))


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    turns: tuple[Turn, ...] = ()
    updated: float = 0.0

    def history(self) -> list[tuple[str, str]]:
        """(question, answer) pairs, for follow-up questions."""
        return [(t.question, t.text) for t in self.turns]


@dataclass(frozen=True)
class Store:
    """One browser's conversations, newest first, and the one on screen (None: a new one)."""

    conversations: tuple[Conversation, ...] = ()
    current: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> Store:
        if not isinstance(d, dict):
            return cls()
        convs = []
        for c in d.get("conversations") or ():
            try:
                turns = tuple(Turn.from_json(t) for t in c.get("turns") or ())
                convs.append(Conversation(str(c["id"]), str(c.get("title") or "Untitled"),
                                          turns, float(c.get("updated") or 0)))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # one damaged conversation must not lose the others
        ids = {c.id for c in convs}
        current = d.get("current")
        return cls(tuple(convs), current if current in ids else None)

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current,
                "conversations": [asdict(c) for c in self.conversations]}

    def active(self) -> Conversation | None:
        return next((c for c in self.conversations if c.id == self.current), None)

    def add(self, turn: Turn) -> Store:
        """`turn` appended to the conversation on screen (a new one if there is none)."""
        conv = self.active() or Conversation(uuid.uuid4().hex[:12],
                                             _title(turn.question))
        conv = replace(conv, turns=(*conv.turns, turn)[-MAX_TURNS:], updated=time.time())
        rest = [c for c in self.conversations if c.id != conv.id]
        return Store((conv, *rest)[:MAX_CONVERSATIONS], conv.id)

    def switch(self, conv_id: str | None) -> Store:
        known = any(c.id == conv_id for c in self.conversations)
        return replace(self, current=conv_id if known else None)

    def delete(self, conv_id: str | None) -> Store:
        """Without that conversation; the newest remaining one goes on screen."""
        rest = tuple(c for c in self.conversations if c.id != conv_id)
        current = self.current if self.current != conv_id else (rest[0].id if rest else None)
        return Store(rest, current)

    def choices(self) -> list[tuple[str, str]]:
        """(title, id) for the conversation list, newest first."""
        return [(c.title, c.id) for c in self.conversations]


def _title(question: str) -> str:
    """A conversation's name: its first question, cut at a word.

    >>> _title("How many missiles were intercepted over the Kursk region on Tuesday night?")
    'How many missiles were intercepted over the Kursk region on…'
    """
    q = " ".join(question.split())
    if len(q) <= _TITLE_CHARS:
        return q
    cut = q.rfind(" ", 0, _TITLE_CHARS)
    return q[: cut if cut > 0 else _TITLE_CHARS] + "…"


def _load(cls: Any, d: Any) -> Any:
    """`cls(**d)` keeping only the fields `cls` has (a store from another version)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: (tuple(v) if isinstance(v, list) else v)
                  for k, v in dict(d).items() if k in names})


__all__ = ["Conversation", "Quote", "Store", "Turn"]
