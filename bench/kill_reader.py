"""The kill loop's reader: keeps an index open and searches it, opening every hit's article,
while `rag index --sync` runs are started and killed beside it (bench/kill_loop.py).

    python bench/kill_reader.py INDEX STOP_FILE [--reopen-every 25]

An error is any exception from a search or an article lookup, or a hit whose article text
at the hit's offsets is not the hit's text (a search and its lookups must read one
version). The index is mostly one long-lived `Index` (as the app holds it), reopened every
`--reopen-every` searches (as a command opens it). Prints one JSON line when STOP_FILE
appears: searches (with hits), lookups, errors (and the first few), reopens.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

QUERIES = ["harbour council storm", "minister election budget", "railway strike workers",
           "village school winter", "river bridge police", "festival museum library",
           "energy prices market", "ferry coast airport", "mayor vote union", "hospital report"]


def start_reader(index: Path, stop: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(index),
                             str(stop)], stdout=subprocess.PIPE, stderr=None,
                            text=True, env={k: v for k, v in os.environ.items()
                                            if not k.startswith("RAG_")})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("index")
    p.add_argument("stop")
    p.add_argument("--reopen-every", type=int, default=25)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fakes import FakeEmbedder

    from rag.errors import IndexNotFoundError
    from rag.index.facade import Index

    rng = random.Random(7)
    searches = lookups = errors = reopens = 0
    examples: list[str] = []
    idx = None
    print("ready", flush=True)
    while not Path(args.stop).exists():
        try:
            if idx is None:
                idx = Index.load(args.index, embedder=FakeEmbedder())
                reopens += 1
            hits = idx.search(rng.choice(QUERIES), k=rng.choice([3, 5, 8]))
            if not hits:  # nothing indexed yet: not a search that counts
                time.sleep(0.05)
                continue
            for h in hits:
                art = idx.article(h.article_id)
                lookups += 1
                if art.text[h.start:h.end] != h.text:
                    raise AssertionError(f"{h.article_id}: hit text is not the article's")
            searches += 1
            if searches % args.reopen_every == 0:
                idx.close()
                idx = None
        except IndexNotFoundError:
            time.sleep(0.05)  # before the first run has written anything
        except Exception as e:  # every failure is what this counts
            errors += 1
            if len(examples) < 5:
                examples.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"searches": searches, "lookups": lookups, "errors": errors,
                      "reopens": reopens, "examples": examples}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
