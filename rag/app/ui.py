"""The chat in the browser (Gradio): ask, read the cited passages, add and remove articles.

`serve()` refuses a non-local address without auth, starts `Service` (which brings the index
over the corpus folder up to date in the background) and launches `build(service)`.
`Service` holds only what every session shares: the index and the LLM client. Each browser
session's conversation lives in its own `gr.State` and Chatbot value.

Article text and titles are untrusted: everything this module puts in HTML or Markdown goes
through `html.escape` first (`gr.HTML` renders what it is given).

API endpoints (for `gradio_client`): `/chat` (question -> answer with [n] markers and a
"Sources:" section), `/upload` (files -> per-file report), `/remove` (article ids -> report),
`/articles` (the indexed articles).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rag.answering.answer import answer_stream
from rag.answering.llm import Generator, OpenAICompatible
from rag.app.render import (
    EMPTY_SOURCES,
    _esc,
    chat_text,
    error_html,
    highlight,
    sources_html,
    sources_text,
)
from rag.embed.embedder import Embedder
from rag.errors import InputError, RagError
from rag.index.facade import Index
from rag.ingest.articles import SUPPORTED_SUFFIXES
from rag.ingest.dates import display_date
from rag.options import ANSWER_MODES, AnswerMode, Filters
from rag.results import Answer, Citation, Hit

if TYPE_CHECKING:
    import gradio as gr

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")
_DELAY = 0.5  # seconds between "still indexing" updates

# ----------------------------------------------------------------------------------------
# Safety: where to listen, and file names from uploads


def is_local(host: str) -> bool:
    """Whether `host` is a loopback address (only this machine can connect).

    >>> is_local("127.0.0.1"), is_local("localhost"), is_local("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """RAG_AUTH "user:password" as Gradio's `auth`; None when unset.

    >>> parse_auth("ann:s3cret:x"), parse_auth("")
    (('ann', 's3cret:x'), None)
    """
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("RAG_AUTH must look like user:password (both non-empty)")
    return user, password


def check_host(host: str, auth: tuple[str, str] | None, allow_remote: bool) -> None:
    """Raise unless `host` is local, or a password is set, or the risk was accepted."""
    if is_local(host) or auth or allow_remote:
        return
    raise InputError(
        f"refusing to listen on {host} without a password: anyone who can reach this machine "
        "could read your articles and change the index. Set RAG_AUTH=user:password, or pass "
        "--allow-remote to accept that risk, or use --host 127.0.0.1")


def safe_name(name: str) -> str | None:
    """An uploaded file's name reduced to a plain file name; None if nothing usable is left.

    >>> safe_name("../../etc/passwd.txt"), safe_name("C:\\\\x\\\\a<b>.md"), safe_name("..")
    ('passwd.txt', 'a_b_.md', None)
    """
    base = re.split(r"[\\/]", name)[-1]
    base = _UNSAFE_NAME.sub("_", base).strip(" .")
    if not base or set(base) <= {"_", "."}:
        return None
    stem, dot, suffix = base.rpartition(".")
    if dot and len(base) > 120:
        base = stem[: 119 - len(suffix)] + "." + suffix
    return base[:120]


# ----------------------------------------------------------------------------------------
# The shared service: one index for every session


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
                self.status = f"Indexing {self.corpus}…"
                print(f"indexing {self.corpus} into {self.index_dir} …", file=sys.stderr)
                r = idx.add([self.corpus], sync=True, progress=self._progress)
                for s in r.skipped:
                    print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
                print(f"{r.added} added, {r.updated} updated, {r.removed} removed, "
                      f"{r.unchanged} unchanged ({r.seconds:.1f} s)", file=sys.stderr)
            self.status = "Loading the embedding model…"
            idx.embedder.embed(["warm up"])  # the first question should not wait for it
            self.status = "Ready."
            self._idx = idx
        except Exception as e:
            self._error = str(e) if isinstance(e, RagError) else f"{type(e).__name__}: {e}"
            self.status = f"The index could not be opened: {self._error}"
            print(f"error: {self._error}", file=sys.stderr)
        finally:
            self.ready.set()

    def _progress(self, done: int, total: int, name: str) -> None:
        self.status = f"Indexing {self.corpus}: {done} of {total} files ({Path(name).name})"

    def summary(self) -> str:
        """One line for the top of the page: progress, an error, or what the index holds."""
        if not self.ready.is_set() or self._idx is None:
            return self.status
        s = self._idx.stats()
        text = f"Ready: {_count(s.articles, 'article')}, {_count(s.chunks, 'passage')} indexed"
        if self.corpus is not None and not self.corpus.exists():
            return text + f". No folder {self.corpus}: add articles in the Articles tab."
        return text + (f" (from {self.corpus} and uploads)." if self.corpus else ".")

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

    def settings(self, k: float | None, after: str | None, before: str | None,
                 mode: str | None) -> Settings:
        mode = mode or ("llm" if self.llm else "extractive")
        if mode not in ANSWER_MODES:
            raise InputError(f"unknown mode {mode!r}; use one of {', '.join(ANSWER_MODES)}")
        if mode == "llm" and self.llm is None:
            raise InputError("LLM mode needs an endpoint: set RAG_LLM_BASE_URL and "
                             "RAG_LLM_MODEL before starting the app")
        if k is None or not 1 <= int(k) <= 50:
            raise InputError("the number of passages must be between 1 and 50")
        filters = Filters(published_after=_date(after, "'published after'"),
                          published_before=_date(before, "'published before'"))
        return Settings(int(k), filters, cast(AnswerMode, mode))

    def ask(self, question: str, history: Sequence[tuple[str, str]],
            s: Settings) -> Iterator[str | Answer]:
        """`answer_stream` over the shared index with these settings."""
        yield from answer_stream(question, self.index(), history=history, k=s.k, mode=s.mode,
                                 llm=self.llm, filters=s.filters)

    def passage(self, c: Citation, hits: Sequence[Hit]) -> tuple[str, int]:
        """The passage citation `c` quotes from, and its offset in the article."""
        for h in hits:
            if h.article_id == c.article_id and h.chunk_id == c.chunk_id:
                return h.text, h.start
        try:
            text = self.index().article(c.article_id).text
        except RagError:
            return c.quote, c.start
        if c.chunk_end > c.chunk_start:
            return text[c.chunk_start:c.chunk_end], c.chunk_start
        start = max(0, c.start - 300)
        return text[start:c.end + 300], start

    # -- articles ----------------------------------------------------------------------------
    def add_files(self, files: Sequence[str],
                  progress: Callable[[int, int, str], None] | None = None) -> str:
        """Copy uploads into the upload folder and index them; a Markdown per-file report."""
        idx = self.index()
        self.uploads.mkdir(parents=True, exist_ok=True)
        root = self.uploads.resolve()
        infos = idx.articles()
        before = {a.id: a for a in infos}
        old = _by_path(infos)
        rows: list[tuple[str, str]] = []
        saved: dict[Path, tuple[str, bool]] = {}  # target -> (name, newly created)
        for src in files:
            shown = Path(src).name
            name = safe_name(shown)
            if name is None:
                rows.append((shown, "skipped: not a usable file name"))
                continue
            size = Path(src).stat().st_size
            target = (root / name).resolve()
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                why = f"unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})"
            elif size > MAX_UPLOAD_BYTES:
                why = f"too large ({size / 2**20:.1f} MB; limit {MAX_UPLOAD_BYTES // 2**20} MB)"
            elif target.parent != root:
                why = "not a usable file name"
            elif name in before and not _inside(before[name].path, root):
                why = "an article from the corpus folder has this file name; rename the file"
            elif target in saved:
                why = "another file in this upload has the same name"
            else:
                saved[target] = (name, not target.exists())
                shutil.copyfile(src, target)
                continue
            rows.append((name, f"skipped: {why}"))
        if saved:
            report = idx.add(list(saved), progress=progress or False)
            reasons: dict[Path, list[str]] = {}
            for sk in report.skipped:  # JSONL lines come as "path:line"
                p = Path(sk.path)
                key = p if p.resolve() in saved else Path(sk.path.rsplit(":", 1)[0])
                reasons.setdefault(key.resolve(), []).append(sk.reason)
            after = _by_path(idx.articles())
            for target, (name, fresh) in saved.items():
                why = "; ".join(reasons.get(target, []))
                if target not in after:
                    rows.append((name, f"skipped: {why or 'no article found'}"))
                    if fresh:
                        target.unlink(missing_ok=True)
                    continue
                rows.append((name, _file_report(old.get(target, {}), after[target], why)))
        st = idx.stats()
        lines = [f"- `{_esc(n)}`: {_esc(what)}" for n, what in rows]
        total = f"The index now holds {_count(st.articles, 'article')}, {_count(st.chunks, 'passage')}."
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
                lines.append(f"- removed {_esc(infos[i].title or i)}")
            else:
                lines.append(f"- removed {_esc(infos[i].title or i)} (its file is in the corpus "
                             "folder; delete it there too or it comes back at the next start)")
        lines += [f"- `{_esc(i)}`: no such article" for i in unknown]
        return "\n".join(lines) or "Nothing selected."

    def stats_markdown(self) -> str:
        s = self.index().stats()
        overlap = s.chunking.get("overlap_tokens")
        llm = (f"{_esc(self.llm.model)} at {_esc(self.llm.base_url)}" if self.llm else
               "not configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL)")
        return "\n".join([
            "| Index | |", "|---|---|",
            f"| Articles | {s.articles} |", f"| Passages (chunks) | {s.chunks} |",
            f"| Embedding model | `{_esc(s.model)}` (dimension {s.dim}) |",
            f"| Chunking | {s.chunking.get('max_tokens')} tokens, {overlap} overlap |",
            f"| Vector index | {_esc(s.kind)}, version {s.version} |",
            f"| Folder | `{_esc(s.path)}` ({s.bytes_on_disk / 1e6:.1f} MB) |",
            f"| Corpus folder | `{_esc(self.corpus or '(none)')}` |",
            f"| Uploads | `{_esc(self.uploads)}` |",
            f"| LLM endpoint | {llm} |",
        ])


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
        passages = _count(sum(a.chunks for a in added), "passage")
        parts.append(f"added {_count(len(added), 'article')} ({passages})")
    if updated:
        parts.append(f"updated {_count(len(updated), 'article')}")
    if unchanged := len(new) - len(added) - len(updated):
        parts.append(f"{_count(unchanged, 'article')} already indexed")
    return ", ".join(parts) + (f"; skipped: {skipped}" if skipped else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _article_row(a: Any) -> list[str]:
    """An ArticleInfo as a row of the articles table (Gradio shows cells as text)."""
    where = a.source or a.url or (Path(a.path).name if a.path else "")
    return [a.title or a.id, display_date(a.published), where, str(a.chunks)]


# ----------------------------------------------------------------------------------------
# The Blocks


# System fonts: the default theme fetches web fonts, which an offline machine cannot.
_FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

CSS = """
.rag-sources { font-size: 0.95rem; line-height: 1.5; }
.rag-empty, .rag-question { color: var(--body-text-color-subdued); margin-bottom: 0.6rem; }
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.6rem 0.8rem; margin-bottom: 0.7rem; background: var(--block-background-fill); }
.rag-head { font-weight: 600; }
.rag-n { color: var(--color-accent); margin-right: 0.2rem; }
.rag-meta { font-size: 0.85rem; color: var(--body-text-color-subdued); margin: 0.15rem 0 0.4rem;
  overflow-wrap: anywhere; }
.rag-passage { white-space: pre-wrap; border-left: 3px solid var(--border-color-primary);
  padding-left: 0.6rem; }
.rag-passage mark { background: #fde68a; color: #1f2937; padding: 0 2px; border-radius: 2px; }
.rag-sup { color: var(--color-accent); font-weight: 600; margin-left: 1px; }
.rag-abstained { background: #fef3c7; color: #78350f; border-radius: 8px;
  padding: 0.5rem 0.8rem; margin-bottom: 0.7rem; }
.rag-error { background: #fee2e2; color: #7f1d1d; border-radius: 8px; padding: 0.5rem 0.8rem; }
.rag-note { font-size: 0.85rem; color: var(--body-text-color-subdued); }
#rag-status { font-size: 0.9rem; color: var(--body-text-color-subdued); }
"""


def build(service: Service) -> gr.Blocks:
    """The app: Chat, Articles and Index tabs, plus the /chat, /upload, /remove and /articles
    API endpoints. Every handler takes its conversation from the session's own state."""
    import gradio as gr  # heavy: only when an app is built

    modes = [("Extractive: quote the best sentences", "extractive")]
    if service.llm:
        modes.append(("LLM: written answer, every sentence checked", "llm"))

    def poll() -> tuple[Any, ...]:
        ready = service.ready.is_set()  # read once: the lists must match the timer's state
        return (gr.Timer(active=not ready), *refresh())

    def respond(message: str, chat: list[dict[str, str]], history: list[tuple[str, str]],
                k: float, after: str, before: str, mode: str) -> Iterator[tuple[Any, ...]]:
        message = (message or "").strip()
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        chat = [*chat, {"role": "user", "content": chat_text(message)},
                {"role": "assistant", "content": "…"}]
        while not service.ready.wait(_DELAY):
            chat[-1] = {"role": "assistant", "content": f"_{_esc(service.summary())}_ — the "
                        "answer follows when the index is ready."}
            yield chat, gr.skip(), history, ""
        yield chat, gr.skip(), history, ""
        try:
            final: Answer | None = None
            for part in service.ask(message, history, service.settings(k, after, before, mode)):
                if isinstance(part, Answer):
                    final = part
                else:
                    chat[-1] = {"role": "assistant", "content": chat_text(part)}
                    yield chat, gr.skip(), history, ""
        except RagError as e:
            chat[-1] = {"role": "assistant", "content": chat_text(f"Error: {e}")}
            yield chat, error_html(str(e)), history, ""
            return
        assert final is not None
        text = final.text + "".join(f"\n\n_Note: {n}_" for n in final.notes)
        chat[-1] = {"role": "assistant", "content": chat_text(text)}
        panel = sources_html(final, lambda c: service.passage(c, final.hits))
        yield chat, panel, [*history, (message, final.text)], ""

    def chat_api(message: str, k: int = 5, published_after: str = "",
                 published_before: str = "", mode: str = "") -> str:
        """Answer a question from the articles: the answer with [n] markers, then its sources."""
        try:
            s = service.settings(k, published_after, published_before, mode)
            final = [p for p in service.ask(message, (), s) if isinstance(p, Answer)][-1]
        except RagError as e:
            raise gr.Error(str(e)) from None
        return final.text + sources_text(final)

    def upload(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008
        if not files:
            return "No files."
        try:
            return service.add_files(files, lambda d, t, n: progress(
                (d, t), desc=f"Indexing {Path(n).name}"))
        except RagError as e:
            raise gr.Error(str(e)) from None

    def remove_api(article_ids: list[str]) -> str:
        """Remove articles from the index by id (see /articles); returns a report."""
        try:
            return service.remove(article_ids)
        except RagError as e:
            raise gr.Error(str(e)) from None

    def articles_api() -> list[dict[str, str]]:
        """The indexed articles: id, title, published, source, url."""
        return [{"id": a.id, "title": a.title, "published": a.published or "",
                 "source": a.source or "", "url": a.url or ""}
                for a in service.index().articles()]

    def refresh() -> tuple[Any, ...]:
        """The status line, article table, removal choices and index stats, as they are now."""
        status = _esc(service.summary())
        if not service.ready.is_set() or service.error:
            return status, gr.skip(), gr.skip(), status
        infos = service.index().articles()
        choices = [(f"{a.title or a.id} ({display_date(a.published) or 'undated'})", a.id)
                   for a in infos]
        return (status, [_article_row(a) for a in infos], gr.Dropdown(choices=choices, value=[]),
                service.stats_markdown())

    with gr.Blocks(title="Ask the news", analytics_enabled=False) as demo:
        gr.Markdown("## Ask the news\nAnswers quote the indexed articles; every [n] is checked "
                    "against the passage it cites, shown on the right.")
        status_md = gr.Markdown(_esc(service.summary()), elem_id="rag-status")
        timer = gr.Timer(1.0)
        history = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat"), gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation", height=460, allow_tags=False,
                        feedback_options=None, buttons=["copy"],
                        placeholder="Ask about the articles, e.g. *How many missiles were "
                                    "intercepted?*")
                    msg = gr.Textbox(placeholder="Ask a question and press Enter",
                                     show_label=False, autofocus=True, max_length=2000,
                                     submit_btn="Ask", elem_id="rag-question")
                    with gr.Accordion("Settings", open=False):
                        k = gr.Slider(1, 20, value=5, step=1, label="Passages to retrieve")
                        with gr.Row():
                            after = gr.Textbox(label="Published after",
                                               placeholder="YYYY-MM-DD",
                                               info="Both dates are inclusive.")
                            before = gr.Textbox(label="Published before",
                                                placeholder="YYYY-MM-DD",
                                                info="Undated articles are left out when "
                                                     "a date is set.")
                        mode = gr.Radio(modes, value=modes[-1][1], label="Answer mode",
                                        info=None if service.llm else
                                        "LLM answers need RAG_LLM_BASE_URL and "
                                        "RAG_LLM_MODEL.")
                with gr.Column(scale=2):
                    sources = gr.HTML(EMPTY_SOURCES, label="Sources", js_on_load=None,
                                      elem_id="rag-sources-panel", padding=True)
            with gr.Tab("Articles") as articles_tab:
                files = gr.File(label="Add articles (.txt .md .html .htm .json .jsonl, "
                                f"up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                                file_count="multiple")  # types checked per file, reported
                report = gr.Markdown()
                table = gr.Dataframe(headers=["Title", "Published", "Source or file", "Passages"],
                                     datatype="str", interactive=False, wrap=True,
                                     label="Indexed articles", max_height=420,
                                     column_widths=["56%", "14%", "20%", "10%"])
                with gr.Row():
                    chosen = gr.Dropdown([], multiselect=True, label="Articles to remove",
                                         scale=4)
                    remove = gr.Button("Remove", variant="stop", scale=1, min_width=80)
            with gr.Tab("Index") as index_tab:
                stats = gr.Markdown()

        lists = [status_md, table, chosen, stats]
        timer.tick(poll, outputs=[timer, *lists], api_visibility="private",
                   show_progress="hidden")
        msg.submit(respond, inputs=[msg, chatbot, history, k, after, before, mode],
                   outputs=[chatbot, sources, history, msg], api_visibility="private",
                   show_progress="hidden")
        chatbot.clear(lambda: ([], EMPTY_SOURCES), outputs=[history, sources],
                      api_visibility="private")  # the bin icon starts a new conversation
        files.upload(upload, inputs=[files], outputs=[report], api_name="upload").then(
            refresh, outputs=lists, api_visibility="private")
        remove.click(remove_api, inputs=[chosen], outputs=[report],
                     api_visibility="private").then(refresh, outputs=lists,
                                                    api_visibility="private")
        for tab in (articles_tab, index_tab):
            tab.select(refresh, outputs=lists, api_visibility="private")
        gr.api(chat_api, api_name="chat")
        gr.api(remove_api, api_name="remove")
        gr.api(articles_api, api_name="articles")
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, index: str | os.PathLike[str] = "index",
          corpus: str | os.PathLike[str] | None = "seeds", allow_remote: bool = False) -> None:
    """Run the app until interrupted. A non-local `host` needs RAG_AUTH or `allow_remote`."""
    auth = parse_auth(os.environ.get("RAG_AUTH"))
    check_host(host, auth, allow_remote)
    if not is_local(host) and not auth:
        print(f"warning: listening on {host} without a password (--allow-remote)",
              file=sys.stderr)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    service = Service(index, corpus, OpenAICompatible.from_env())
    service.start()
    demo = build(service)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(server_name=host, server_port=port, auth=auth, css=CSS,
                    max_file_size=MAX_UPLOAD_BYTES, footer_links=["api"], show_error=True,
                    theme=gr.themes.Soft(font=_FONTS, font_mono=_MONO))
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port} ({e}); choose another --port") from e


__all__ = [
    "MAX_UPLOAD_BYTES",
    "Service",
    "Settings",
    "build",
    "chat_text",
    "check_host",
    "highlight",
    "is_local",
    "parse_auth",
    "safe_name",
    "serve",
    "sources_html",
    "sources_text",
]
