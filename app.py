"""The chat app: `python app.py [--host H] [--port P] [--index DIR] [--corpus DIR]`.

Same as `rag serve`. Binds 127.0.0.1:7860 by default (GRADIO_SERVER_PORT and
GRADIO_SERVER_NAME are honoured); a non-local --host needs RAG_AUTH=user:password or
--allow-remote. On first start the index over the corpus folder (seeds/) is built.
"""

from __future__ import annotations

import argparse
import os
import sys

from rag import RagError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--index", default=os.environ.get("RAG_INDEX", "index"), help="index folder")
    p.add_argument("--corpus", default="seeds", help="articles indexed on start (default: seeds)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-local --host without auth (anyone on the network can read "
                        "and change your index)")
    args = p.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from rag.app.ui import serve  # gradio is heavy: imported once the flags are known good

    try:
        serve(host=args.host, port=args.port, index=args.index, corpus=args.corpus,
              allow_remote=args.allow_remote)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
