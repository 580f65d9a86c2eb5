"""The Articles tab (upload, the list of indexed articles, removal after a confirmation
that names the articles) and the Index tab, with their events.

The list is HTML, one card per article: the title, and beneath it the date, the source or
file and the passage count. A table crushed those columns to a letter or two per line on a
390 px phone; cards read the same at any width. Everything in it goes through `esc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.app.render import esc
from rag.app.security import MAX_UPLOAD_BYTES
from rag.app.service import Service, article_row, count
from rag.errors import RagError
from rag.escape import printable
from rag.ingest.dates import display_date

if TYPE_CHECKING:
    import gradio as gr


@dataclass
class Articles:
    """The Articles tab's components."""

    tab: Any
    files: Any
    report: Any
    listing: Any
    chosen: Any
    remove: Any
    confirm_box: Any  # hidden until Remove is clicked with articles chosen
    confirm_text: Any
    confirm: Any
    cancel: Any
    pending: Any  # the ids the confirmation names: exactly those are removed


def articles_html(infos: Sequence[Any], empty_help: str = "") -> str:
    """The indexed articles as cards: title, then "date · source or file · passages".

    >>> articles_html([]).count("rag-art-card")
    0
    """
    if not infos:
        return (f'<div class="rag-articles rag-empty" data-testid="rag-articles">'
                f"{esc(empty_help or 'No articles yet.')}</div>")
    cards = []
    for a in infos:
        title, when, where, passages = article_row(a)
        details = " · ".join(esc(x) for x in (when or "Undated", where,
                                             count(int(passages), "passage")) if x)
        cards.append(f'<li class="rag-art-card"><div class="rag-art-title">{esc(title)}</div>'
                     f'<div class="rag-art-meta">{details}</div></li>')
    return (f'<div class="rag-articles" data-testid="rag-articles"><div class="rag-note">'
            f'{count(len(infos), "article")}, newest first</div><ul class="rag-art-list">'
            f'{"".join(cards)}</ul></div>')


def articles_tab() -> Articles:
    import gradio as gr

    with gr.Tab("Articles") as tab:
        files = gr.File(label="Add articles (.txt .md .html .htm .json .jsonl, "
                        f"up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                        file_count="multiple")  # types checked per file, reported
        report = gr.Markdown(elem_id="rag-articles-report")
        listing = gr.HTML(articles_html([]), elem_id="rag-article-list", padding=False)
        with gr.Row():
            chosen = gr.Dropdown([], multiselect=True, label="Articles to remove", scale=4)
            remove = gr.Button("Remove…", variant="stop", scale=1, min_width=80,
                               elem_id="rag-remove")
        with gr.Column(visible=False, elem_id="rag-confirm") as confirm_box:
            confirm_text = gr.Markdown()
            with gr.Row():
                confirm = gr.Button("Yes, remove", variant="stop", elem_id="rag-confirm-yes")
                cancel = gr.Button("Cancel", elem_id="rag-confirm-no")
        pending = gr.State([])
    return Articles(tab, files, report, listing, chosen, remove, confirm_box, confirm_text,
                    confirm, cancel, pending)


def index_tab() -> tuple[Any, Any]:
    import gradio as gr

    with gr.Tab("Index") as tab:
        stats = gr.Markdown()
    return tab, stats


def confirmation(service: Service, article_ids: Sequence[str]) -> str:
    """The question asked before removing: each chosen article by title (Markdown)."""
    titles = {a.id: a.title or a.id for a in service.index().articles()}
    names = "\n".join(f"- {esc(printable(titles.get(i, i)))}" for i in article_ids)
    return (f"**Remove {count(len(article_ids), 'article')} from the index?**\n\n{names}\n\n"
            "Uploaded files are deleted too; an article from the corpus folder comes back at "
            "the next start unless its file is deleted there.")


def wire_articles(service: Service, arts: Articles, timer: Any, lists: list[Any],
                  index_tab: Any) -> None:
    """Upload, refresh, and remove-after-confirming. `lists` are what `refresh` updates:
    the status line, the article list, the removal choices, the index stats and the
    chat's placeholder (which says how to add articles while there are none)."""
    import gradio as gr

    private: dict[str, Any] = {"api_visibility": "private"}

    def refresh() -> tuple[Any, ...]:
        """The status line, article list, removal choices, index stats and the chat's
        placeholder, as they are now. The removal list gets new choices but never a value:
        a refresh that lands after the user's picks (the timer's, an upload's, on a busy
        machine) carries the choice as it was when it started, and setting it would undo
        the picks made since (CI 2026-12-07: "Remove 1 article" after two were picked).
        Only a removal clears the choice."""
        status = esc(service.summary())
        if not service.ready.is_set() or service.error:
            return status, gr.skip(), gr.skip(), status, gr.skip()
        infos = service.index().articles()
        choices = [(f"{printable(a.title or a.id)} ({display_date(a.published) or 'undated'})", a.id)
                   for a in infos]
        return (status, articles_html(infos, service.empty_help()), gr.Dropdown(choices=choices), service.stats_markdown(),
                gr.Chatbot(placeholder=placeholder(service)))

    def poll() -> tuple[Any, ...]:
        ready = service.ready.is_set()  # read once: the lists must match the timer's state
        return (gr.Timer(active=not ready), *refresh())

    def upload(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008
        if not files:
            return "No files."
        try:
            return service.add_files(files, lambda d, t, n: progress(
                (d, t), desc=f"Indexing {Path(n).name}"))
        except RagError as e:
            raise gr.Error(str(e)) from None

    def ask_first(article_ids: list[str]) -> tuple[Any, ...]:
        if not article_ids:
            return ("Nothing selected: choose the articles to remove first.", gr.skip(),
                    gr.Column(visible=False), [])
        try:
            return (gr.skip(), confirmation(service, article_ids), gr.Column(visible=True),
                    list(article_ids))
        except RagError as e:
            raise gr.Error(str(e)) from None

    def remove_chosen(article_ids: list[str]) -> tuple[Any, ...]:  # not "remove": the API's
        try:
            return (service.remove(article_ids or []), gr.Column(visible=False),
                    gr.Dropdown(value=[]))
        except RagError as e:
            raise gr.Error(str(e)) from None

    timer.tick(poll, outputs=[timer, *lists], show_progress="hidden", **private)
    arts.files.upload(upload, inputs=[arts.files], outputs=[arts.report],
                      api_name="upload").then(refresh, outputs=lists, **private)
    arts.remove.click(ask_first, inputs=[arts.chosen], outputs=[
        arts.report, arts.confirm_text, arts.confirm_box, arts.pending], **private)
    arts.confirm.click(remove_chosen, inputs=[arts.pending],
                       outputs=[arts.report, arts.confirm_box, arts.chosen], **private).then(
        refresh, outputs=lists, **private)
    arts.cancel.click(lambda: gr.Column(visible=False), outputs=[arts.confirm_box], **private)
    for tab in (arts.tab, index_tab):
        tab.select(refresh, outputs=lists, **private)


def placeholder(service: Service) -> str:
    """What the empty chat says: how to add articles while there are none, else what to ask."""
    if service.is_empty():
        return service.empty_help()
    if service.ready.is_set() and not service.error:
        return "Ask about the articles, e.g. *How many missiles were intercepted?*"
    return "Ask about the articles."
