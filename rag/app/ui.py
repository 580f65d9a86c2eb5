"""Starting the chat: one command-line parser for `rag serve` and `app.py`, and `serve()`.

`serve()` refuses a non-local address without auth, starts `Service` (which brings the index
over the corpus folder up to date in the background) and launches `build(service)`.
Nothing heavy is imported until `serve()` runs, so `rag --help` stays fast.

API endpoints (for `gradio_client`): `/chat` (question -> answer with [n] markers and a
"Sources:" section), `/upload` (files -> per-file report), `/remove` (article ids -> report),
`/articles` (the indexed articles).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rag.app.security import (
    MAX_UPLOAD_BYTES,
    check_host,
    is_local,
    parse_auth,
    safe_name,
)
from rag.errors import InputError

DEFAULT_PORT = 7860  # Gradio's own default
CLOSE_GRACE_S = 1.0  # Ctrl-C: how long the server may take to close before we exit anyway
_POLL_S = 0.2  # how often the main thread wakes to notice Ctrl-C


def add_serve_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of `rag serve` and `python app.py`, declared once."""
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int,
                   default=int(os.environ.get("GRADIO_SERVER_PORT", str(DEFAULT_PORT))))
    p.add_argument("--index", default=os.environ.get("RAG_INDEX", "index"),
                   help="index folder (default: index/)")
    p.add_argument("--corpus", default=None,
                   help="articles indexed on start (default: seeds/, into the default "
                        "index/ folder only)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-local --host without auth (anyone on the network can "
                        "read and change your index)")
    return p


def serve_from_args(args: argparse.Namespace) -> None:
    """`serve()` with the flags `add_serve_arguments` declared."""
    serve(host=args.host, port=args.port, index=args.index,
          corpus=startup_corpus(args.index, args.corpus), allow_remote=args.allow_remote)


def startup_corpus(index: str | os.PathLike[str], corpus: str | None) -> str | None:
    """The folder indexed on start: `--corpus` if given; else the repo's seeds, but only
    into the default index/ folder: a user's own index never gets the seed articles."""
    if corpus is not None:
        return corpus
    return "seeds" if Path(index) == Path("index") else None


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          index: str | os.PathLike[str] = "index",
          corpus: str | os.PathLike[str] | None = "seeds", allow_remote: bool = False) -> None:
    """Run the app until interrupted. A non-local `host` needs RAG_AUTH or `allow_remote`."""
    auth = parse_auth(os.environ.get("RAG_AUTH"))
    check_host(host, auth, allow_remote)
    if not is_local(host) and not auth:
        print(f"warning: listening on {host} without a password (--allow-remote)",
              file=sys.stderr)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    from rag.answering.llm import OpenAICompatible
    from rag.app.assets import CSS
    from rag.app.blocks import FONTS, MONO, build
    from rag.app.security import browser_secret
    from rag.app.service import Service

    service = Service(index, corpus, OpenAICompatible.from_env())
    built: dict[str, Any] = {}
    # Ctrl-C must stop the app whenever it comes, even inside Gradio's launch(), which can
    # swallow a KeyboardInterrupt (seen: a SIGINT right after the first page answered left
    # the app running): the handler itself exits.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stop_now(built.get("demo")))
    service.start()
    try:
        demo = built["demo"] = build(service, browser_secret(Path(index)))
        demo.queue(default_concurrency_limit=4)
        try:
            demo.launch(server_name=host, server_port=port, auth=auth, css=CSS,
                        max_file_size=MAX_UPLOAD_BYTES, footer_links=["api"],
                        show_error=True, theme=gr.themes.Soft(font=FONTS, font_mono=MONO),
                        prevent_thread_lock=True)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port} ({e}); choose another "
                             "--port") from e
        while True:
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        stop_now(locals().get("demo"))


def stop_now(demo: Any) -> None:
    """After Ctrl-C: close the server (for up to CLOSE_GRACE_S) and exit with status 130.

    Gradio's own wait closes the server and then lets the interpreter wind down torch and
    the worker threads: 2.7 s after Ctrl-C on this 2-core machine under load (0.1 s of it
    closing the server), and an abort if the start-up indexing is still embedding. So the
    process exits without that wind-down. Nothing is lost: the index is crash-safe, and
    indexing or an upload cut short is redone by the next start's sync."""
    print("stopping…", file=sys.stderr, flush=True)
    if demo is not None:
        closer = threading.Thread(target=demo.close, name="rag-close", daemon=True)
        closer.start()
        closer.join(CLOSE_GRACE_S)
    print("stopped", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(130)


__all__ = ["MAX_UPLOAD_BYTES", "add_serve_arguments", "check_host", "is_local", "parse_auth",
           "safe_name", "serve", "serve_from_args"]
