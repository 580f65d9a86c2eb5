"""What the `rag` command prints: article text made safe for a terminal, whole-word
snippets, and answers as text or as the `rag ask --json` object."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rag.escape import printable

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """Article text with terminal control sequences removed (articles are untrusted); it
    keeps its lines. A path, title or id goes through `rag.escape.printable` instead.

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
            print(f"[{c.n}] {printable(c.title)}{f', published {when}' if when else ''} "
                  f"({printable(where)})")
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


SCORES_HELP = (
    "Each passage shows two scores. cosine: how well the passage matches the query, the "
    "cosine similarity of their embeddings (higher is closer, and it can be compared across "
    "queries). rank: the score that orders the list; in the default hybrid mode the mean of "
    "the cosine and the BM25 score, each min-max normalised over this query's candidates, "
    "so the best candidate scores near 1.0 however weak a match it is. --json gives per "
    "passage \"dense\" (the cosine), \"lexical\" (the raw BM25 score, 0 when no query word "
    "occurs) and \"score\" (the rank score).")


def print_hits(hits: Sequence[Any], why_fewer: str | None) -> None:
    """`rag search`'s text: each passage with its cosine and rank score, then a note on
    stderr when fewer passages came back than were asked for, and why."""
    from rag.ingest.dates import display_date

    if not hits:
        print("no passages found")
    for h in hits:
        when = f"published {display_date(h.published)}" if h.published else "undated"
        print(f"[{h.rank}] {printable(h.title)} ({when}) cosine {h.dense:.2f}, "
              f"rank {h.score:.4f}")
        print("    " + snippet(safe(" ".join(h.text.split()))))
    if why_fewer:
        print(f"note: {why_fewer}", file=sys.stderr)


def why_fewer(idx: Any, found: int, k: int, filters: Any, mode: str) -> str | None:
    """Why a search of `k` passages found only `found` (None when it found `k`)."""
    if found >= k:
        return None
    from rag.retrieve.passages import PassageSpec

    got = f"{found} passage{'' if found == 1 else 's'}, not {k}"
    if filters is not None and filters.active:
        return f"{got}: only these pass the date and source filters"
    if mode == "lexical":
        return f"{got}: only these hold a word of the query (lexical mode matches words only)"
    st = idx.stats()
    return (f"{got}: the index holds {st.articles} article{'' if st.articles == 1 else 's'} "
            f"({st.chunks} chunks), and chunks next to each other in one article are joined "
            f"into one passage of up to {PassageSpec().max_chars} characters; add articles "
            "for more")


def index_summary(report: Any) -> str:
    """`rag index`'s last line: what changed, what the index holds, the seconds in all and
    per stage (`rag.index.progress.Stages`)."""
    moved = f"{report.moved} moved (re-pointed, not embedded again), " if report.moved else ""
    return (f"{report.added} added, {report.updated} updated, {report.removed} removed, {moved}"
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped; "
            f"{report.chunks_added} chunks embedded; index holds {report.articles} articles, "
            f"{report.chunks} chunks ({report.seconds:.1f} s: {report.stages.summary()})"
            + (f"; {report.reused} vectors reused from the vector cache, not embedded again"
               if report.reused else "")
            + (f"; {report.kept} articles kept: their files could not be checked"
               if report.kept else ""))


def confirm(question: str) -> bool:
    """Ask `question` on the terminal; True on yes. Never call it unless stdin is a tty."""
    try:
        reply = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return reply.strip().lower() in ("y", "yes")


def remove_articles(idx: Any, article_ids: Sequence[str], *, ask: bool) -> int:
    """`rag remove`: name the articles, ask on a terminal (never elsewhere: there `ask`
    refuses, and --yes skips the question), remove them; the exit status."""
    from rag.errors import InputError

    infos = {a.id: a for a in idx.articles()}
    known = [i for i in dict.fromkeys(article_ids) if i in infos]
    for i in article_ids:
        if i not in infos:
            print(f"no article '{printable(i)}' in {printable(idx.path)} (the ids: `rag stats "
                  "--json` counts them, `rag search --json` shows them)", file=sys.stderr)
    if not known:
        return 1
    names = "\n".join(f"  {printable(infos[i].title or i)} ({printable(i)})" for i in known)
    if ask:
        if not sys.stdin.isatty():
            raise InputError("rag remove asks before removing, and the input is not a "
                             "terminal: add --yes to remove without asking")
        if not confirm(f"Remove {_count(len(known), 'article')} from {printable(idx.path)}?"
                       f"\n{names}\n"):
            print("nothing removed", file=sys.stderr)
            return 1
    idx.remove(known)
    print(f"removed {_count(len(known), 'article')}:\n{names}\n"
          f"the index holds {_count(idx.stats().articles, 'article')}; an article whose file "
          "is still in an indexed folder comes back at the next `rag index` of it: delete "
          "the file too")
    return 0 if len(known) == len(article_ids) else 3


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
