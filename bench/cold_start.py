"""Cold start: `rag stats`, `rag search` and `rag ask` as whole processes, as a user runs them.

    python bench/cold_start.py [--index DIR] [-n 7] [--backends onnx,torch]

For each embedding backend (`RAG_EMBED_BACKEND`: onnx, the default path; torch, the path
before ONNX) each command runs `-n` times in a fresh Python process, after one untimed
run that fills the model cache and the OS page cache. Prints p50/p95 wall seconds, and
checks that the cold process's `--json` output equals the same command run in-process.
Without `--index`, the seed article is indexed into a temporary folder first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rag.eval.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How many missiles were intercepted?"
COMMANDS = {
    "stats": ["stats", "--json"],
    "search": ["search", QUESTION, "--json"],
    "ask": ["ask", QUESTION, "--json"],
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cold(argv: list[str], backend: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one fresh `rag` process.
    CPU seconds barely move with the machine's load: on a busy machine they are the
    better guess of an idle machine's wall time (one thread; two can only lower it)."""
    env = dict(os.environ, RAG_EMBED_BACKEND=backend, HF_HUB_OFFLINE="1")
    c, t = _cpu(), time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "rag.cli", *argv], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    if out.returncode != 0:
        raise SystemExit(f"rag {' '.join(argv)} failed:\n{out.stderr}")
    return wall, cpu, out.stdout


def run_in_process(argv: list[str]) -> str:
    from rag.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(argv)
    return buf.getvalue()


def same(a: str, b: str) -> bool:
    """Equal JSON, floats compared to 4 decimals: thread counts (chosen from the load at
    start) may change a score's last bits, never a ranking or an answer."""
    def rounded(x: Any) -> Any:
        if isinstance(x, float):
            return round(x, 4)
        if isinstance(x, list):
            return [rounded(v) for v in x]
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x

    return bool(rounded(json.loads(a)) == rounded(json.loads(b)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path)
    p.add_argument("-n", type=int, default=7, help="timed runs per command and backend")
    p.add_argument("--backends", default="onnx,torch")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            from rag import Index

            Index.build([ROOT / "seeds"], path=index, progress=False).close()
        print(f"index {index}; load average {os.getloadavg()[0]:.2f} at start")
        print("| command | backend | wall p50 s | wall p95 s | CPU p50 s | runs | "
              "same as in-process |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for backend in args.backends.split(","):
            os.environ["RAG_EMBED_BACKEND"] = backend
            for name, argv in COMMANDS.items():
                full = [*argv, "--index", str(index)]
                first = run_cold(full, backend)[2]  # fills caches; not timed
                runs = [run_cold(full, backend)[:2] for _ in range(args.n)]
                walls, cpus = [w for w, _ in runs], [c for _, c in runs]
                ok = "yes" if same(first, run_in_process(full)) else "NO"
                print(f"| rag {name} | {backend} | {percentile(walls, 50):.2f} | "
                      f"{percentile(walls, 95):.2f} | {percentile(cpus, 50):.2f} | {len(walls)} | "
                      f"{ok} |", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
