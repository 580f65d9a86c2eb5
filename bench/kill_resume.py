"""The kill loop's resume measurement (`python bench/kill_loop.py --resume-at F`): kill one
build when it has started the fraction F of its embedding work, re-run it, and count how
much the re-run embedded again (the vector cache should make it ~0)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kill_loop import Runner, check, texts


def resume_at(args: argparse.Namespace, work: Path, pool: list[str]) -> dict:
    """Kill one build when it has started `args.resume_at` of its embedding work, re-run
    it, and count what the re-run embedded again. The whole build's work is counted first
    with the fake embedder (no model time): chunks and sentences are the same texts."""
    corpus, index = work / "corpus", work / "index"
    corpus.mkdir()
    for i, text in enumerate(pool):
        (corpus / f"a{i:05d}.txt").write_text(text, encoding="utf-8")
    counter = Runner(work, True, 0.0)
    proc, log0, _, _ = counter.start(["index", str(corpus), "--index", str(work / "count"), "-q"])
    proc.wait()
    whole = len(texts(log0))
    runner = Runner(work, args.embedder == "fake", args.fake_ms)
    t0 = time.monotonic()
    proc, log, _, _ = runner.start(["index", str(corpus), "--index", str(index), "-q"],
                                   kill_after=int(whole * args.resume_at))
    killed_rc = proc.wait()
    killed_s = time.monotonic() - t0
    first = texts(log)
    t0 = time.monotonic()
    proc, log2, _, err2 = runner.start(["index", str(corpus), "--index", str(index), "-q"])
    rc = proc.wait()
    second = texts(log2)
    redone = set(first) & set(second)
    state, problems = check(index, embedder_for(args))
    return {"articles": len(pool), "whole_build_texts": whole,
            "killed_after_texts": int(whole * args.resume_at), "killed_rc": killed_rc,
            "texts_started_before_kill": len(first), "texts_embedded_by_rerun": len(second),
            "redone": len(redone),
            "redone_share_of_killed_work": round(len(redone) / max(1, len(set(first))), 4),
            "rerun_share_of_whole_build": round(len(second) / max(
                1, len(set(first)) + len(set(second) - set(first))), 4),
            "killed_run_s": round(killed_s, 1), "rerun_s": round(time.monotonic() - t0, 1),
            "rerun_rc": rc, "articles_indexed": len(state), "problems": problems,
            "rerun_stdout": b"".join(err2).decode(errors="replace")[-300:]}


def embedder_for(args: argparse.Namespace) -> object:
    if args.embedder == "fake":
        from fakes import FakeEmbedder
        return FakeEmbedder()
    from rag.embed.embedder import SentenceTransformerEmbedder
    return SentenceTransformerEmbedder(threads=1)


__all__ = ["embedder_for", "resume_at"]
