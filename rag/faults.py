"""Named points in a write where the fault tests kill the process (kill -9).

When RAG_FAULT_POINT names a point, the process announces it on stderr and waits there,
so a test can kill it at exactly that moment. Unset (always, in normal use) it costs a
dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time

POINTS = ("embedding", "store_write", "faiss_write", "bm25_write", "manifest_swap")


def checkpoint(name: str) -> None:
    if os.environ.get("RAG_FAULT_POINT") == name:
        print(f"RAG_FAULT_POINT reached: {name}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("RAG_FAULT_WAIT", "60")))
