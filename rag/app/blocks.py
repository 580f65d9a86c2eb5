"""The Gradio page: a Chat tab (conversations, chat, sources), an Articles tab (upload, list,
remove) and an Index tab, plus the API endpoints `/chat`, `/upload`, `/remove`, `/articles`.

`build(service)` lays the page out and wires the events: the chat is here (`_chat_tab`,
`_wire_chat`); the Articles and Index tabs are `articles_tab`, the API endpoints `api`.
Conversations live in the browser (`gr.BrowserState`, see `history`): every handler gets the
browser's store as an input and returns the new one, so the server keeps none. Everything
put into HTML or Markdown goes through `render` (escaped).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.app.api import declare_api
from rag.app.article import export_markdown
from rag.app.articles_tab import articles_tab, index_tab, placeholder, wire_articles
from rag.app.assets import JS
from rag.app.history import Store, Turn
from rag.app.render import (
    EMPTY_SOURCES,
    answer_markdown,
    chat_text,
    error_html,
    esc,
    panel_html,
    working_html,
)
from rag.app.security import safe_name
from rag.app.service import Service, Settings
from rag.errors import EmptyIndexError, RagError
from rag.options import MAX_QUERY_CHARS
from rag.results import Answer

if TYPE_CHECKING:
    import gradio as gr

_DELAY = 0.5  # seconds between "still indexing" updates in the chat
_STORAGE_KEY = "rag-conversations"

# System fonts: the default theme fetches web fonts, which an offline machine cannot.
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


@dataclass
class _Chat:
    """The Chat tab's components."""

    store: Any
    convs: Any
    new: Any
    delete: Any
    export: Any
    chatbot: Any
    msg: Any
    unfiltered: Any
    k: Any
    after: Any
    before: Any
    mode: Any  # None when no LLM is configured
    sources: Any


def build(service: Service, secret: str | None = None) -> gr.Blocks:
    """The app. `secret` encrypts the conversations kept in each browser (None: a new key
    each start, so conversations saved before a restart cannot be read back)."""
    import gradio as gr  # heavy: only when an app is built

    with gr.Blocks(title="Ask the news", analytics_enabled=False) as demo:
        gr.Markdown("## Ask the news\nAnswers quote the indexed articles; every [n] is checked "
                    "against the passage it cites. Click an [n] to see its source, or an "
                    "answer to see its sources again.")
        status = gr.Markdown(esc(service.summary()), elem_id="rag-status")
        timer = gr.Timer(1.0)
        store = gr.BrowserState(Store().to_json(), storage_key=_STORAGE_KEY, secret=secret)
        with gr.Tabs():
            chat = _chat_tab(service, store)
            articles = articles_tab()
            index_tab_, stats = index_tab()
        lists = [status, articles.listing, articles.chosen, stats, chat.chatbot]
        _wire_chat(service, chat)
        wire_articles(service, articles, timer, lists, index_tab_)
        declare_api(service)
        demo.load(_shown(service), inputs=[chat.store], outputs=_views(chat),
                  api_visibility="private", show_progress="hidden")
    return demo  # type: ignore[no-any-return]  # gradio's context manager is untyped


def _chat_tab(service: Service, store: Any) -> _Chat:
    import gradio as gr

    with gr.Tab("Chat"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=200):
            new = gr.Button("New conversation", size="sm", elem_id="rag-new")
            convs = gr.Radio([], label="Conversations (kept in this browser)",
                             elem_id="rag-convs")
            with gr.Row():
                delete = gr.Button("Delete", size="sm", variant="stop", elem_id="rag-delete",
                                   min_width=60)
                export = gr.DownloadButton("Export .md", size="sm", elem_id="rag-export",
                                           min_width=60, interactive=False)
        with gr.Column(scale=3, min_width=300):
            chatbot = gr.Chatbot(
                show_label=False, height=460, allow_tags=False, feedback_options=None,
                buttons=["copy"], elem_classes=["rag-chat"], elem_id="rag-chat",
                placeholder=placeholder(service))
            msg = gr.Textbox(placeholder="Ask a question and press Enter",
                             show_label=False, autofocus=True, max_length=MAX_QUERY_CHARS,
                             submit_btn="Ask", elem_id="rag-question")
            unfiltered = gr.Button("Ask without the filter", visible=False, size="sm",
                                   elem_id="rag-unfiltered")
            with gr.Accordion("Settings", open=False):
                k = gr.Slider(1, 20, value=5, step=1, label="Passages to retrieve")
                with gr.Row():
                    after = gr.Textbox(label="Published after", placeholder="YYYY-MM-DD",
                                       info="Both dates are inclusive.", elem_id="rag-after")
                    before = gr.Textbox(label="Published before", placeholder="YYYY-MM-DD",
                                        info="Undated articles are left out when a date "
                                             "is set.", elem_id="rag-before")
                mode = None
                if service.llm:  # no choice to offer without an LLM
                    mode = gr.Radio([("LLM: written answer, every sentence checked", "llm"),
                                     ("Extractive: quote the best sentences", "extractive")],
                                    value="llm", label="Answer mode")
        with gr.Column(scale=2, min_width=300):
            def open_article(ask: Any) -> str:
                """The page's script sends {"article": id, "spans": "[[start, end, n,
                quote], …]"} (Gradio passes a server function one value)."""
                ask = ask if isinstance(ask, dict) else {}
                return service.article_view(str(ask.get("article", "")),
                                            str(ask.get("spans", "[]")))

            sources = gr.HTML(EMPTY_SOURCES, js_on_load=JS, elem_id="rag-sources-panel",
                              server_functions=[open_article], padding=True)
    return _Chat(store, convs, new, delete, export, chatbot, msg, unfiltered, k, after,
                 before, mode, sources)


# -- the chat --------------------------------------------------------------------------------
def _views(chat: _Chat) -> list[Any]:
    """What showing a conversation updates, in the order `_shown` returns them."""
    return [chat.store, chat.convs, chat.chatbot, chat.sources, chat.export, chat.unfiltered]


def _messages(store: Store) -> list[dict[str, str]]:
    conv = store.active()
    out = []
    for i, t in enumerate(conv.turns if conv else ()):
        out += [{"role": "user", "content": chat_text(t.question)},
                {"role": "assistant", "content": answer_markdown(t, i)}]
    return out


def _shown(service: Service) -> Any:
    """The handler that shows the store's current conversation (and saves the store)."""
    import gradio as gr

    def show(raw: Any) -> tuple[Any, ...]:
        store = Store.from_json(raw)
        conv = store.active()
        turns = conv.turns if conv else ()
        export = None
        if conv and turns and service.ready.is_set() and not service.error:
            export = _export_file(conv.id, safe_name(f"{conv.title}.md") or "conversation.md",
                                  export_markdown(conv, service.resolve))
        ready = service.ready.is_set() and not service.error
        panel = panel_html(turns, service.resolve) if ready else EMPTY_SOURCES
        last = turns[-1] if turns else None
        return (store.to_json(), gr.Radio(choices=store.choices(), value=store.current),
                gr.Chatbot(value=_messages(store), placeholder=placeholder(service)),  # type: ignore[arg-type]
                panel,
                gr.DownloadButton(value=str(export) if export else None,
                                  interactive=export is not None),
                gr.Button(visible=bool(last and last.abstained and last.filter)))
    return show


_EXPORTS: list[Path] = []  # this process's export folder, made on first use


def _export_file(conv_id: str, name: str, text: str) -> Path:
    """The conversation's Markdown export as a file for the download button.

    One folder per process, removed at exit, and one file per conversation, replaced on
    each change: a folder per export piled up in /tmp over a day of use. Gradio copies the
    file into its own cache when it serves it, so replacing it later is safe."""
    if not _EXPORTS:
        _EXPORTS.append(Path(tempfile.mkdtemp(prefix="rag-export-")))
        atexit.register(shutil.rmtree, _EXPORTS[0], True)
    # The id comes from the browser: hashed, it cannot name a path outside the folder.
    folder = _EXPORTS[0] / hashlib.sha256(conv_id.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / name
    export.write_text(text, encoding="utf-8")
    for old in folder.iterdir():
        if old != export:
            old.unlink(missing_ok=True)  # the conversation's title changed
    return export


def _filter_label(s: Settings) -> str:
    """The active date filter in words ("" when none).

    >>> from rag.options import Filters
    >>> _filter_label(Settings(filters=Filters(published_after="2030-01-01")))
    'published after 2030-01-01'
    """
    a, b = s.filters.published_after, s.filters.published_before
    if a and b:
        return f"published between {a} and {b}"
    return f"published after {a}" if a else (f"published before {b}" if b else "")


def _respond(service: Service, message: str, raw: Any, k: float, after: str, before: str,
             mode: str | None) -> Iterator[tuple[Any, ...]]:
    """Ask: a working state at once, then the answer, then the conversation saved.
    Yields (store, conversations, chatbot, sources, export, unfiltered button, question box)."""
    import gradio as gr

    message = (message or "").strip()
    if not message:
        yield (gr.skip(),) * 7
        return
    store = Store.from_json(raw)
    conv = store.active()
    turns = conv.turns if conv else ()
    chat = [*_messages(store), {"role": "user", "content": chat_text(message)},
            {"role": "assistant", "content": "_Searching the articles…_"}]
    keep = (gr.skip(),) * 2  # the store and the conversation list, until the answer is in

    def working(what: str) -> tuple[Any, ...]:
        panel = panel_html(turns, service.resolve, extra=working_html(what)) if (
            service.ready.is_set() and not service.error) else working_html(what)
        return (*keep, chat, panel, gr.skip(), gr.Button(visible=False), "")

    while not service.ready.wait(_DELAY):
        chat[-1]["content"] = f"_{esc(service.summary())}: the answer follows when ready._"
        yield working(service.summary())
    try:
        s = service.settings(k, after, before, mode)
        what = ("Writing the answer; each sentence is shown once checked against its source…"
                if s.mode == "llm" else "Searching the articles and checking each quote…")
        yield working(what)
        final: Answer | None = None
        for part in service.ask(message, conv.history() if conv else [], s):
            if isinstance(part, Answer):
                final = part
            elif s.mode == "llm":  # verified sentences so far (extractive: one final text)
                chat[-1]["content"] = chat_text(part) + "\n\n_Checking the next sentence…_"
                yield working(what)
        assert final is not None
    except RagError as e:  # an empty index is no error: it says how to add articles
        chat[-1]["content"] = chat_text(str(e) if isinstance(e, EmptyIndexError) else
                                        f"Error: {e}")
        yield (*keep, chat, error_html(str(e)), gr.skip(), gr.skip(), gr.skip())
        return
    store = store.add(Turn.of_answer(final, _filter_label(s)))
    shown = _shown(service)(store.to_json())
    yield (*shown, "")


def _wire_chat(service: Service, chat: _Chat) -> None:

    private: dict[str, Any] = {"api_visibility": "private"}
    views = _views(chat)
    settings = [chat.k, chat.after, chat.before]

    def respond(message: str, raw: Any, k: float, after: str, before: str,
                mode: str | None = None) -> Iterator[tuple[Any, ...]]:
        yield from _respond(service, message, raw, k, after, before, mode)

    ask_inputs = [chat.msg, chat.store, *settings, *([chat.mode] if chat.mode else [])]
    # A question sent while the last answer is still finishing (shown, not yet closed) is
    # asked next; Gradio's default for submit ("once") dropped it without a word.
    chat.msg.submit(respond, inputs=ask_inputs, outputs=[*views, chat.msg],
                    show_progress="hidden", trigger_mode="always_last", **private)

    def without_filter(raw: Any) -> tuple[str, str, str]:
        conv = Store.from_json(raw).active()
        return "", "", conv.turns[-1].question if conv and conv.turns else ""

    chat.unfiltered.click(without_filter, inputs=[chat.store],
                          outputs=[chat.after, chat.before, chat.msg], **private).then(
        respond, inputs=ask_inputs, outputs=[*views, chat.msg], show_progress="hidden",
        **private)
    show = _shown(service)
    chat.convs.input(lambda raw, cid: show(Store.from_json(raw).switch(cid).to_json()),
                     inputs=[chat.store, chat.convs], outputs=views, **private)
    chat.new.click(lambda raw: show(Store.from_json(raw).switch(None).to_json()),
                   inputs=[chat.store], outputs=views, **private)
    chat.delete.click(lambda raw: show(Store.from_json(raw).delete(
        Store.from_json(raw).current).to_json()), inputs=[chat.store], outputs=views,
        **private)
