"""The chat app: `python app.py [--host H] [--port P] [--index DIR] [--corpus DIR]`.

Same as `rag serve` (the same parser). Binds 127.0.0.1:7860 by default (GRADIO_SERVER_PORT
and GRADIO_SERVER_NAME are honoured); a non-local --host needs RAG_AUTH=user:password or
--allow-remote. On first start the index over the corpus folder (seeds/) is built.
"""

from __future__ import annotations

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
