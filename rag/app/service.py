"""The state every browser session shares: one index over the corpus folder plus uploads,
and the LLM client. Each session's conversation lives in the browser, never here.

`Service.start()` brings the index up to date in a background thread, so the page opens at
once and says what it is doing; every call that needs the index waits for it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.answering.answer import answer_stream
from rag.answering.llm import Generator
from rag.app.article import Span, article_html
from rag.app.history import Quote
from rag.app.render import Passage, esc
from rag.app.security import MAX_UPLOAD_BYTES, safe_name
from rag.embed.embedder import Embedder
from rag.errors import EmptyIndexError, IndexLockedError, InputError, RagError
from rag.escape import printable
from rag.index.facade import Index
from rag.index.uploads import add_uploads
from rag.ingest.articles import SUPPORTED_SUFFIXES
from rag.ingest.dates import display_date
from rag.options import ANSWER_MODES, AnswerMode, Filters
from rag.results import Answer

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_MAX_K = 50  # passages per question: beyond this the sources panel is unreadable
_CONTEXT = 300  # characters shown either side of a quote whose passage is unknown

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Settings:
    """What the settings panel (or an API call) asks for."""

    k: int = 5
    filters: Filters = field(default_factory=Filters)
    mode: AnswerMode = "extractive"


def _date(value: str | None, what: str) -> str | None:
    value = (value or "").strip()
    if value and not _DATE.match(value):
        raise InputError(f"{what} date {value!r} is not a date; use YYYY-MM-DD (or YYYY-MM)")
    return value or None


class Service:
    """The index over `corpus` plus uploads, built in the background on `start()`."""

    lock_timeout = 10.0  # seconds an upload waits for another process's write to finish

    def __init__(self, index_dir: str | os.PathLike[str], corpus: str | os.PathLike[str] | None,
                 llm: Generator | None = None, embedder: Embedder | None = None) -> None:
        self.index_dir = Path(index_dir)
        self.corpus = Path(corpus) if corpus else None
        self.uploads = self.index_dir / "uploads"
        self.llm = llm
        self.embedder = embedder  # None: the index's own model
        self.ready = threading.Event()
        self.status = "Opening the index…"
        self._idx: Index | None = None
        self._error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._prepare, name="rag-index", daemon=True).start()

    def _prepare(self) -> None:
        try:
            idx = Index.open(self.index_dir, embedder=self.embedder)
            if self.corpus is not None and self.corpus.exists():
                self._sync_corpus(idx, self.corpus)
            self.status = "Loading the embedding model…"
            idx.embedder.embed(["warm up"])  # the first question should not wait for it
            self.status = "Ready."
            self._idx = idx
        except Exception as e:
            self._error = str(e) if isinstance(e, RagError) else f"{type(e).__name__}: {e}"
            self.status = f"The index could not be opened: {self._error}"
            print(f"error: {printable(self._error)}", file=sys.stderr, flush=True)
        finally:
            self.ready.set()

    def _sync_corpus(self, idx: Index, corpus: Path) -> None:
        self.status = f"Indexing {printable(corpus)}…"
        print(f"indexing {printable(corpus)} into {printable(self.index_dir)} …",
              file=sys.stderr, flush=True)
        r = idx.add([corpus], sync=True, progress=self._progress)
        for s in r.skipped:
            print(f"skipped {printable(s.path)}: {printable(s.reason)}", file=sys.stderr)
        print(f"{r.added} added, {r.updated} updated, {r.removed} removed, {r.moved} moved, "
              f"{r.unchanged} unchanged ({r.seconds:.1f} s)", file=sys.stderr, flush=True)

    def _progress(self, done: int, total: int, name: str) -> None:
        self.status = (f"Indexing {printable(self.corpus)}: {done} of {total} files "
                       f"({printable(Path(name).name)})")

    def summary(self) -> str:
        """One line for the top of the page: progress, an error, or what the index holds."""
        if not self.ready.is_set() or self._idx is None:
            return self.status
        s = self._idx.stats()
        text = f"Ready: {count(s.articles, 'article')}, {count(s.chunks, 'passage')} indexed"
        if not s.articles:
            return f"{text}. {self.empty_help()}"
        if self.corpus is not None and not self.corpus.exists():
            return text + f". No folder {printable(self.corpus)}: add articles in the Articles tab."
        return text + (f" (from {printable(self.corpus)} and uploads)." if self.corpus else ".")

    def empty_help(self) -> str:
        """What to do while the index holds no article (Markdown)."""
        return ("No articles yet: add some with the upload box in the **Articles** tab, or "
                f"index a folder from a terminal with `rag index FOLDER --index "
                f"{printable(self.index_dir)}`, then ask.")

    def is_empty(self) -> bool:
        """Whether the index is open and holds no article."""
        return self.ready.is_set() and self._idx is not None and not self._idx.stats().articles

    @property
    def error(self) -> str | None:
        """Why the index could not be opened, if it could not."""
        return self._error

    def index(self) -> Index:
        """The index, once the start-up build is done."""
        self.ready.wait()
        if self._idx is None:
            raise RagError(f"the index is unavailable: {self._error}")
        return self._idx

    # -- questions ---------------------------------------------------------------------------
    def settings(self, k: float | None, after: str | None, before: str | None,
                 mode: str | None) -> Settings:
        """Settings from the panel's raw values; InputError says which value is wrong."""
        mode = mode or ("llm" if self.llm else "extractive")
        if mode not in ANSWER_MODES:
            raise InputError(f"unknown mode {mode!r}; use one of {', '.join(ANSWER_MODES)}")
        if mode == "llm" and self.llm is None:
            raise InputError("LLM mode needs an endpoint: set RAG_LLM_BASE_URL and "
                             "RAG_LLM_MODEL before starting the app")
        if k is None or not 1 <= int(k) <= _MAX_K:
            raise InputError(f"the number of passages must be between 1 and {_MAX_K}")
        filters = Filters(published_after=_date(after, "'published after'"),
                          published_before=_date(before, "'published before'"))
        return Settings(int(k), filters, mode)

    def ask(self, question: str, history: Sequence[tuple[str, str]],
            s: Settings) -> Iterator[str | Answer]:
        """`answer_stream` over the shared index with these settings; `EmptyIndexError`
        (saying how to add articles) while the index holds none."""
        if self.is_empty():
            raise EmptyIndexError(self.empty_help())
        yield from answer_stream(question, self.index(), history=history, k=s.k, mode=s.mode,
                                 llm=self.llm, filters=s.filters)

    def resolve(self, q: Quote) -> Passage:
        """The passage a stored quote sits in, re-checked against the article as it is now
        (`quote == text[start:end]`): state "changed" or "gone" when it no longer is."""
        try:
            text = self.index().article(q.article_id).text
        except RagError:
            return Passage(q.quote, q.start, "gone")
        if text[q.start:q.end] != q.quote:
            return Passage(q.quote, q.start, "changed")
        if q.chunk_end > q.chunk_start:
            return Passage(text[q.chunk_start:q.chunk_end], q.chunk_start)
        start = max(0, q.start - _CONTEXT)
        return Passage(text[start:q.end + _CONTEXT], start)

    def article_view(self, article_id: str, spans_json: str) -> str:
        """The article view's HTML: the whole article with these quoted spans highlighted
        where they still match. `spans_json` comes from the page: [[start, end, n, quote]]."""
        try:
            spans: list[Span] = [(int(s), int(e), int(n), str(q))
                                 for s, e, n, q in json.loads(spans_json or "[]")]
        except (ValueError, TypeError):
            spans = []
        try:
            art = self.index().article(str(article_id))
        except RagError:
            return article_html(None, str(article_id), [])
        return article_html(art, art.id, spans)

    # -- articles ----------------------------------------------------------------------------
    def add_files(self, files: Sequence[str], progress: Progress | None = None) -> str:
        """Copy uploads into the upload folder and index them, as one step under the
        index's write lock; a Markdown per-file report. When another process holds the
        lock, nothing is copied and the report says so."""
        idx = self.index()
        self.uploads.mkdir(parents=True, exist_ok=True)
        root = self.uploads.resolve()
        before = idx.articles()
        rows, saved = _save_uploads(files, root, {a.id: a for a in before})
        if saved:
            try:
                rows += _index_uploads(idx, saved, _by_path(before), progress,
                                       self.lock_timeout)
            except IndexLockedError:
                rows += [(name, "not added: another process (a `rag index` run?) is writing "
                          "to the index; nothing was kept, add it again when that has "
                          "finished") for name, _ in saved.values()]
        st = idx.stats()
        lines = [f"- `{esc(printable(n))}`: {esc(printable(what))}" for n, what in rows]
        total = (f"The index now holds {count(st.articles, 'article')}, "
                 f"{count(st.chunks, 'passage')}.")
        return "\n".join([*lines, "", total])

    def remove(self, article_ids: Sequence[str]) -> str:
        """Remove articles (and their uploaded files); a Markdown report."""
        idx = self.index()
        infos = {a.id: a for a in idx.articles()}
        known = [i for i in dict.fromkeys(article_ids) if i in infos]
        unknown = [i for i in article_ids if i not in infos]
        idx.remove(known)
        root = self.uploads.resolve()
        still = _by_path(idx.articles())
        lines = []
        for i in known:
            path = infos[i].path
            if _inside(path, root):
                if Path(path or "").resolve() not in still:  # a JSONL file may hold more
                    Path(path or "").unlink(missing_ok=True)
                lines.append(f"- removed {esc(printable(infos[i].title or i))}")
            else:
                lines.append(f"- removed {esc(printable(infos[i].title or i))} (its file is in the corpus "
                             "folder; delete it there too or it comes back at the next start)")
        lines += [f"- `{esc(printable(i))}`: no such article" for i in unknown]
        return "\n".join(lines) or "Nothing selected."

    def stats_markdown(self) -> str:
        """The Index tab: what the index holds and how it was built."""
        s = self.index().stats()
        overlap = s.chunking.get("overlap_tokens")
        llm = "not configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL)"
        if self.llm is not None:  # any Generator; OpenAICompatible also says where it is
            llm = (f"{esc(getattr(self.llm, 'model', '?'))} at "
                   f"{esc(getattr(self.llm, 'base_url', '?'))}")
        return "\n".join([
            "| Index | |", "|---|---|",
            f"| Articles | {s.articles} |", f"| Passages (chunks) | {s.chunks} |",
            f"| Embedding model | `{esc(printable(s.model))}` (dimension {s.dim}) |",
            f"| Chunking | {s.chunking.get('max_tokens')} tokens, {overlap} overlap |",
            f"| Vector index | {esc(s.kind)}, version {s.version} |",
            f"| Folder | `{esc(printable(s.path))}` ({s.bytes_on_disk / 1e6:.1f} MB) |",
            f"| Corpus folder | `{esc(printable(self.corpus or '(none)'))}` |",
            f"| Uploads | `{esc(printable(self.uploads))}` |",
            f"| LLM endpoint | {llm} |",
        ])


# -- uploads, step by step -------------------------------------------------------------------
def _refusal(name: str, size: int, target: Path, root: Path, before: dict[str, Any],
             saved: dict[Path, tuple[str, str]]) -> str | None:
    """Why an upload called `name` cannot be saved at `target`; None if it can."""
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        return f"unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})"
    if size > MAX_UPLOAD_BYTES:
        return f"too large ({size / 2**20:.1f} MB; limit {MAX_UPLOAD_BYTES // 2**20} MB)"
    if target.parent != root:
        return "not a usable file name"
    if target in saved:
        return "another file in this upload has the same name"
    return None


def _save_uploads(files: Sequence[str], root: Path, before: dict[str, Any]
                  ) -> tuple[list[tuple[str, str]], dict[Path, tuple[str, str]]]:
    """Where each acceptable file goes in `root` (copied there by `_index_uploads`, under
    the write lock). Returns the report rows of the refused ones and {target: (name,
    source)} of the accepted ones."""
    rows: list[tuple[str, str]] = []
    saved: dict[Path, tuple[str, str]] = {}
    for src in files:
        shown = Path(src).name
        name = safe_name(shown)
        if name is None:
            rows.append((shown, "skipped: not a usable file name"))
            continue
        target = (root / name).resolve()
        why = _refusal(name, Path(src).stat().st_size, target, root, before, saved)
        if why:
            rows.append((name, f"skipped: {why}"))
            continue
        saved[target] = (name, src)
    return rows, saved


def _index_uploads(idx: Index, saved: dict[Path, tuple[str, str]],
                   old: dict[Path, dict[str, Any]], progress: Progress | None,
                   lock_timeout: float) -> list[tuple[str, str]]:
    """Copy the files in and index them under the lock; one report row each. A file that
    held no article is undone (`rag.index.uploads`)."""
    # Uploads have their own ids ("upload:NAME"): they never replace a corpus article.
    report, _ = add_uploads(idx, {t: Path(src) for t, (_, src) in saved.items()},
                            progress=progress or False, lock_timeout=lock_timeout)
    reasons: dict[Path, list[str]] = {}
    for sk in report.skipped:  # a JSONL line's skip names its file in `source`
        reasons.setdefault(Path(sk.source).resolve(), []).append(sk.reason)
    after = _by_path(idx.articles())
    rows = []
    for target, (name, _) in saved.items():
        why = "; ".join(reasons.get(target, []))
        if target not in after:
            rows.append((name, f"skipped: {why or 'no article found'}"))
            continue
        rows.append((name, _file_report(old.get(target, {}), after[target], why)))
    return rows


def _inside(path: str | None, root: Path) -> bool:
    return bool(path) and Path(path or "").resolve().parent == root


def _by_path(infos: Sequence[Any]) -> dict[Path, dict[str, Any]]:
    """Indexed articles grouped by their (resolved) file: {path: {id: ArticleInfo}}."""
    out: dict[Path, dict[str, Any]] = {}
    for a in infos:
        if a.path:
            out.setdefault(Path(a.path).resolve(), {})[a.id] = a
    return out


def _file_report(old: dict[str, Any], new: dict[str, Any], skipped: str) -> str:
    """What indexing one uploaded file did, e.g. "added 1 article (3 passages)"."""
    added = [a for i, a in new.items() if i not in old]
    updated = [a for i, a in new.items() if i in old and a.content_hash != old[i].content_hash]
    parts = []
    if added:
        passages = count(sum(a.chunks for a in added), "passage")
        parts.append(f"added {count(len(added), 'article')} ({passages})")
    if updated:
        parts.append(f"updated {count(len(updated), 'article')}")
    if unchanged := len(new) - len(added) - len(updated):
        parts.append(f"{count(unchanged, 'article')} already indexed")
    return ", ".join(parts) + (f"; skipped: {skipped}" if skipped else "")


def count(n: int, noun: str) -> str:
    """ "1 article", "3 articles"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def article_row(a: Any) -> list[str]:
    """An ArticleInfo as a row of the articles table (Gradio shows cells as text)."""
    where = a.source or a.url or (Path(a.path).name if a.path else "")
    return [printable(a.title or a.id), display_date(a.published), printable(where),
            str(a.chunks)]
