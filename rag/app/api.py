"""The app's API endpoints for `gradio_client`: `/chat` (question -> answer with [n]
markers and a "Sources:" section), `/remove` (article ids -> report) and `/articles` (the
indexed articles); `/upload` is the Articles tab's upload event (`articles_tab`)."""

from __future__ import annotations

from rag.app.render import sources_text
from rag.app.service import Service
from rag.errors import RagError
from rag.results import Answer


def declare_api(service: Service) -> None:
    """Declare `/chat`, `/remove` and `/articles` on the Blocks being built."""
    import gradio as gr

    def chat_api(message: str, k: int = 5, published_after: str = "",
                 published_before: str = "", mode: str = "") -> str:
        """Answer a question from the articles: the answer with [n] markers, then its sources."""
        try:
            s = service.settings(k, published_after, published_before, mode)
            final = [p for p in service.ask(message, (), s) if isinstance(p, Answer)][-1]
        except RagError as e:
            raise gr.Error(str(e)) from None
        return final.text + sources_text(final)

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

    api = gr.api  # type: ignore[attr-defined]  # gradio re-exports it without __all__
    api(chat_api, api_name="chat")
    api(remove_api, api_name="remove")
    api(articles_api, api_name="articles")
