"""The Gradio page: a Chat tab, an Articles tab (upload, list, remove) and an Index tab,
plus the API endpoints `/chat`, `/upload`, `/remove` and `/articles`.

`build(service)` lays the page out (`_chat_tab`, `_articles_tab`, `_index_tab`), then wires
the events (`_wire`). Handlers take the conversation from the session's own state, never
from the service. Everything put into HTML or Markdown goes through `render` (escaped).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.app.render import EMPTY_SOURCES, chat_text, error_html, esc, sources_html, sources_text
from rag.app.security import MAX_UPLOAD_BYTES
from rag.app.service import Service, article_row
from rag.errors import RagError
from rag.ingest.dates import display_date
from rag.results import Answer

if TYPE_CHECKING:
    import gradio as gr

_DELAY = 0.5  # seconds between "still indexing" updates in the chat

# System fonts: the default theme fetches web fonts, which an offline machine cannot.
FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

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


@dataclass
class _Chat:
    chatbot: Any
    msg: Any
    k: Any
    after: Any
    before: Any
    mode: Any
    sources: Any


@dataclass
class _Articles:
    tab: Any
    files: Any
    report: Any
    table: Any
    chosen: Any
    remove: Any


def build(service: Service) -> gr.Blocks:
    """The app: Chat, Articles and Index tabs, plus the /chat, /upload, /remove and /articles
    API endpoints. Every handler takes its conversation from the session's own state."""
    import gradio as gr  # heavy: only when an app is built

    with gr.Blocks(title="Ask the news", analytics_enabled=False) as demo:
        gr.Markdown("## Ask the news\nAnswers quote the indexed articles; every [n] is checked "
                    "against the passage it cites, shown on the right.")
        status = gr.Markdown(esc(service.summary()), elem_id="rag-status")
        timer = gr.Timer(1.0)
        history = gr.State([])
        with gr.Tabs():
            chat = _chat_tab(service)
            articles = _articles_tab()
            index_tab, stats = _index_tab()
        _wire(service, chat, articles, history, timer, [status, articles.table,
                                                         articles.chosen, stats], index_tab)
    return demo  # type: ignore[no-any-return]  # gradio's context manager is untyped


def _chat_tab(service: Service) -> _Chat:
    import gradio as gr

    modes = [("Extractive: quote the best sentences", "extractive")]
    if service.llm:
        modes.append(("LLM: written answer, every sentence checked", "llm"))
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
                    after = gr.Textbox(label="Published after", placeholder="YYYY-MM-DD",
                                       info="Both dates are inclusive.")
                    before = gr.Textbox(label="Published before", placeholder="YYYY-MM-DD",
                                        info="Undated articles are left out when a date "
                                             "is set.")
                mode = gr.Radio(modes, value=modes[-1][1], label="Answer mode",
                                info=None if service.llm else
                                "LLM answers need RAG_LLM_BASE_URL and RAG_LLM_MODEL.")
        with gr.Column(scale=2):
            sources = gr.HTML(EMPTY_SOURCES, label="Sources", js_on_load=None,
                              elem_id="rag-sources-panel", padding=True)
    return _Chat(chatbot, msg, k, after, before, mode, sources)


def _articles_tab() -> _Articles:
    import gradio as gr

    with gr.Tab("Articles") as tab:
        files = gr.File(label="Add articles (.txt .md .html .htm .json .jsonl, "
                        f"up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                        file_count="multiple")  # types checked per file, reported
        report = gr.Markdown()
        table = gr.Dataframe(headers=["Title", "Published", "Source or file", "Passages"],
                             datatype="str", interactive=False, wrap=True,
                             label="Indexed articles", max_height=420,
                             column_widths=["56%", "14%", "20%", "10%"])
        with gr.Row():
            chosen = gr.Dropdown([], multiselect=True, label="Articles to remove", scale=4)
            remove = gr.Button("Remove", variant="stop", scale=1, min_width=80)
    return _Articles(tab, files, report, table, chosen, remove)


def _index_tab() -> tuple[Any, Any]:
    import gradio as gr

    with gr.Tab("Index") as tab:
        stats = gr.Markdown()
    return tab, stats


def _wire(service: Service, chat: _Chat, arts: _Articles, history: Any, timer: Any,
          lists: list[Any], index_tab: Any) -> None:
    """Connect the events and declare the API endpoints."""
    import gradio as gr

    def refresh() -> tuple[Any, ...]:
        """The status line, article table, removal choices and index stats, as they are now."""
        status = esc(service.summary())
        if not service.ready.is_set() or service.error:
            return status, gr.skip(), gr.skip(), status
        infos = service.index().articles()
        choices = [(f"{a.title or a.id} ({display_date(a.published) or 'undated'})", a.id)
                   for a in infos]
        return (status, [article_row(a) for a in infos], gr.Dropdown(choices=choices, value=[]),
                service.stats_markdown())

    def poll() -> tuple[Any, ...]:
        ready = service.ready.is_set()  # read once: the lists must match the timer's state
        return (gr.Timer(active=not ready), *refresh())

    def respond(message: str, chatlog: list[dict[str, str]], hist: list[tuple[str, str]],
                k: float, after: str, before: str, mode: str) -> Iterator[tuple[Any, ...]]:
        yield from _respond(service, message, chatlog, hist, k, after, before, mode)

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

    private: dict[str, Any] = {"api_visibility": "private"}
    timer.tick(poll, outputs=[timer, *lists], show_progress="hidden", **private)
    chat.msg.submit(respond, inputs=[chat.msg, chat.chatbot, history, chat.k, chat.after,
                                     chat.before, chat.mode],
                    outputs=[chat.chatbot, chat.sources, history, chat.msg],
                    show_progress="hidden", **private)
    chat.chatbot.clear(lambda: ([], EMPTY_SOURCES), outputs=[history, chat.sources],
                       **private)  # the bin icon starts a new conversation
    arts.files.upload(upload, inputs=[arts.files], outputs=[arts.report],
                      api_name="upload").then(refresh, outputs=lists, **private)
    arts.remove.click(remove_api, inputs=[arts.chosen], outputs=[arts.report],
                      **private).then(refresh, outputs=lists, **private)
    for tab in (arts.tab, index_tab):
        tab.select(refresh, outputs=lists, **private)
    api = gr.api  # type: ignore[attr-defined]  # gradio re-exports it without __all__
    api(chat_api, api_name="chat")
    api(remove_api, api_name="remove")
    api(articles_api, api_name="articles")


def _respond(service: Service, message: str, chat: list[dict[str, str]],
             history: list[tuple[str, str]], k: float, after: str, before: str,
             mode: str) -> Iterator[tuple[Any, ...]]:
    """The chat handler: the answer streams into the chat, then the sources panel fills."""
    import gradio as gr

    message = (message or "").strip()
    if not message:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    chat = [*chat, {"role": "user", "content": chat_text(message)},
            {"role": "assistant", "content": "…"}]
    while not service.ready.wait(_DELAY):
        chat[-1] = {"role": "assistant", "content": f"_{esc(service.summary())}_ — the "
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
