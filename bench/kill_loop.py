"""Kill-loop: random kill -9s of real `rag index --sync` runs, and `--rebuild`s racing a
writer; reports corrupt / lost / duplicated counts and the embedding work redone.

    python bench/kill_loop.py [--kills 25] [--races 5] [--embedder fake|real] [--seed 1]
    python bench/kill_loop.py --resume-at 0.8 --scifact 300 --embedder real

Each run is the real CLI (`rag.cli.main`) in its own process; the embedder is either the
test suite's deterministic fake (`--embedder fake`, default: slowed to `--fake-ms` per text
so a kill lands mid-embedding as it would with a model) or the real all-MiniLM-L6-v2
(`--embedder real`). Either way it is wrapped to log a hash of every text it starts to
embed, so "redone" is exact: texts a killed run started that a later run embedded again.

Between runs articles are added, changed and removed, and now and then the corpus folder
is renamed (the next sync is given the new name). Throughout, a reader process
(bench/kill_reader.py) keeps the index open, searching and opening every hit's article:
its errors are counted. After every run the index is opened and checked: it loads, the
store passes SQLite's integrity check, FAISS and BM25 hold exactly the live chunks, no
chunk or content is live twice, and it holds exactly the state before the run or the one
the run was writing (that one, if it exited 0, with every stored path a file in the
folder given).
`--resume-at F` instead kills one build when it has started the fraction F of its
embedding work (texts; counted beforehand with the fake embedder), re-runs it, and reports
how much the re-run embedded again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"

DRIVER = """\
import hashlib, os, sys, time
sys.path.insert(0, {tests!r})
import rag.cli

def wrap(base, log, ms):
    kill_after = int(os.environ.get("KILL_LOOP_KILL_AFTER", "0"))
    class Logged(type(base)):
        done = 0
        def embed(self, texts):
            with open(log, "a") as f:  # logged before the work: a kill loses it
                f.write("".join(hashlib.sha1(t.encode()).hexdigest()[:16] + "\\n"
                                for t in texts))
            Logged.done += len(texts)
            if kill_after and Logged.done >= kill_after:  # killed inside this call
                os.kill(os.getpid(), 9)
            if ms:
                time.sleep(ms * len(texts) / 1000)
            return super().embed(texts)
    base.__class__ = Logged
    return base

if {fake!r}:
    from fakes import FakeEmbedder
    emb = FakeEmbedder()
else:
    from rag.embed.embedder import SentenceTransformerEmbedder
    emb = SentenceTransformerEmbedder(threads=1)
wrap(emb, os.environ["KILL_LOOP_LOG"], float(os.environ.get("KILL_LOOP_MS", "0")))
sys.exit(rag.cli.main(sys.argv[1:], embedder=emb))
"""

WORDS = ["council", "harbour", "minister", "election", "river", "village", "report", "police", "winter", "school", "railway", "budget", "market", "storm", "bridge", "hospital", "strike", "farmers", "court", "museum", "airport", "festival", "energy", "prices", "workers", "union", "coast", "ferry", "library", "vote", "mayor"]


def synthetic(i: int, rev: int = 0) -> str:
    rng = random.Random(i * 1000 + rev)
    sentences = [f"The {rng.choice(WORDS)} and the {rng.choice(WORDS)} were discussed on day "
                 f"{rng.randrange(1, 400)} by {rng.choice(WORDS)} officials (revision {rev})."
                 for _ in range(rng.randrange(3, 60))]
    return f"Story {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}\n\n" + " ".join(sentences) + "\n"


def scifact(n: int) -> list[str]:
    out = []
    with open(SCIFACT, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append(f"{d['title']}\n\n{d['text']}\n")
            if len(out) == n:
                break
    return out


# -- checking ------------------------------------------------------------------------------
State = dict[str, tuple[str, int]]


def check(index: Path, embedder: object) -> tuple[State, list[str]]:
    """The index's state, and what is wrong with it (empty when sound)."""
    from rag.index.facade import Index

    problems: list[str] = []
    db = sqlite3.connect(f"file:{index / 'store.sqlite'}?mode=ro", uri=True)
    try:
        if db.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            problems.append("integrity check failed")
        arts = dict(db.execute("SELECT id, content_hash FROM articles WHERE deleted IS NULL"))
        counts = dict(db.execute("SELECT article_id, count(*) FROM chunks WHERE deleted IS NULL "
                                 "GROUP BY article_id"))
        if db.execute("SELECT count(*) FROM (SELECT 1 FROM chunks WHERE deleted IS NULL GROUP "
                      "BY article_id, ord HAVING count(*) > 1)").fetchone()[0]:
            problems.append("duplicate live chunks")
        live = sorted(r[0] for r in db.execute("SELECT id FROM chunks WHERE deleted IS NULL"))
    finally:
        db.close()
    if len(set(arts.values())) != len(arts):
        problems.append("duplicate content live twice")
    state = {a: (h, counts.get(a, 0)) for a, h in arts.items()}
    try:
        idx = Index.load(index, embedder=embedder)  # type: ignore[arg-type]
        try:
            derived = idx._current()
            if sorted(int(i) for i in derived.lexical.live_ids) != live:
                problems.append("BM25 differs from the store")
            if derived.vectors.size != len(live):
                problems.append("FAISS differs from the store")
            idx.search("harbour council storm", k=3)
        finally:
            idx.close()
    except Exception as e:
        problems.append(f"cannot open or search: {type(e).__name__}: {e}")
    return state, problems


def expected(corpus: Path, embedder: object) -> State:
    from rag.index.writer import chunk_for
    from rag.ingest.articles import Article, iter_articles
    from rag.ingest.chunking import ChunkSpec

    out: State = {}
    for art in iter_articles([corpus]):
        if isinstance(art, Article):
            out[art.id] = (art.content_hash, len(chunk_for(embedder, art, ChunkSpec())))  # type: ignore[arg-type]
    return out


def stale_paths(index: Path, corpus: Path) -> int:
    """Live articles whose stored path is not a file in `corpus` (a sync must follow it)."""
    db = sqlite3.connect(f"file:{index / 'store.sqlite'}?mode=ro", uri=True)
    try:
        paths = [r[0] for r in db.execute("SELECT path FROM articles WHERE deleted IS NULL")]
    finally:
        db.close()
    return sum(not (p and Path(p).is_file() and Path(p).parent == corpus) for p in paths)


# -- running -------------------------------------------------------------------------------
class Runner:
    def __init__(self, work: Path, fake: bool, ms: float) -> None:
        self.work, self.ms = work, ms
        self.driver = work / f"driver-{'fake' if fake else 'real'}.py"
        self.driver.write_text(DRIVER.format(tests=str(ROOT / "tests"), fake=fake))
        self.runs = 0

    def start(self, args: list[str], kill_after: int = 0
              ) -> tuple[subprocess.Popen[bytes], Path, threading.Event, list[bytes]]:
        self.runs += 1
        log = self.work / f"{self.driver.stem}-{id(self)}-run{self.runs:03d}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(KILL_LOOP_LOG=str(log), KILL_LOOP_MS=str(self.ms), HF_HUB_OFFLINE="1",
                   KILL_LOOP_KILL_AFTER=str(kill_after))
        proc = subprocess.Popen([sys.executable, str(self.driver), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        started, err = threading.Event(), []

        def read() -> None:
            assert proc.stderr is not None
            while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
                err.append(chunk)
                if b"indexing" in b"".join(err[-2:]):
                    started.set()
            started.set()

        threading.Thread(target=read, daemon=True).start()
        return proc, log, started, err


def texts(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def mutate(rng: random.Random, corpus: Path, pool: list[str], revs: dict[int, int],
           synthetic_mode: bool) -> str:
    """Add, change and remove a few files; what was done."""
    present = sorted(int(p.stem[1:]) for p in corpus.glob("a*.txt"))
    absent = [i for i in range(len(pool)) if i not in set(present)]
    add = rng.sample(absent, min(len(absent), rng.randint(3, 15)))
    change = rng.sample(present, min(len(present), rng.randint(2, 10)))
    remove = rng.sample([i for i in present if i not in change],
                        min(len(present) - len(change), rng.randint(1, 8)))
    for i in add:
        (corpus / f"a{i:05d}.txt").write_text(pool[i], encoding="utf-8")
    for i in change:
        revs[i] = revs.get(i, 0) + 1
        text = synthetic(i, revs[i]) if synthetic_mode else \
            pool[i] + f"\nUpdate {revs[i]}: a correction was appended.\n"
        (corpus / f"a{i:05d}.txt").write_text(text, encoding="utf-8")
    for i in remove:
        (corpus / f"a{i:05d}.txt").unlink()
    return f"+{len(add)} ~{len(change)} -{len(remove)}"


def kill_loop(args: argparse.Namespace, work: Path, emb: object, pool: list[str]) -> dict:
    rng = random.Random(args.seed)
    corpus, index = work / "corpus-0", work / "index"
    corpus.mkdir()
    for i in range(len(pool) // 2):
        (corpus / f"a{i:05d}.txt").write_text(pool[i], encoding="utf-8")
    runner = Runner(work, args.embedder == "fake", args.fake_ms)
    revs: dict[int, int] = {}
    totals = {"runs": 0, "killed": 0, "completed": 0, "corrupt": 0, "lost": 0,
              "duplicated": 0, "wrong_state": 0, "stale_paths": 0, "renames": 0,
              "started_then_killed": 0, "redone": 0, "embedded": 0}
    current: State = {}
    span = None
    killed_texts: set[str] = set()
    log_lines = []
    from kill_reader import start_reader

    reader = start_reader(index, work / "stop-reader")
    while totals["killed"] < args.kills:
        what = mutate(rng, corpus, pool, revs, args.scifact == 0) if totals["runs"] else "first"
        if totals["runs"] and rng.random() < args.rename:  # the folder moves between runs
            corpus = corpus.rename(work / f"corpus-{totals['runs']}")
            totals["renames"] += 1
            what += ", folder renamed"
        cmd = ["index", str(corpus), "--index", str(index), "--sync"]
        target = expected(corpus, emb)
        proc, log, started, _err = runner.start(cmd)
        started.wait(600)
        t0 = time.monotonic()
        # Mostly mid-run; about one run in five completes (and sets the next span).
        delay = rng.uniform(0.05, 1.5) * max(span or 5.0, 5.0)
        try:
            rc = proc.wait(delay)
            span = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
        totals["runs"] += 1
        done = texts(log)
        totals["embedded"] += len(done)
        redone = killed_texts & set(done)
        totals["redone"] += len(redone)
        killed_texts -= set(done)
        if rc == -signal.SIGKILL:
            totals["killed"] += 1
            totals["started_then_killed"] += len(set(done))
            killed_texts |= set(done)
        elif rc in (0, 3):
            totals["completed"] += 1
        state, problems = check(index, emb)
        if problems:
            totals["corrupt"] += 1
        if rc in (0, 3):
            totals["lost"] += len(set(target) - set(state))
            totals["duplicated"] += len(set(state) - set(target))
            totals["stale_paths"] += stale_paths(index, corpus)
            if state != target:
                totals["wrong_state"] += 1
        elif state not in (current, target):
            totals["wrong_state"] += 1
        current = state
        log_lines.append(f"run {totals['runs']:2d} ({what}): rc {rc}, {len(done)} texts "
                         f"embedded, {len(redone)} of them redone; "
                         f"{problems if problems else 'OK'}")
        print(log_lines[-1], flush=True)
    # A last full run: everything there, nothing twice.
    proc, log, _, _ = runner.start(["index", str(corpus), "--index", str(index), "--sync"])
    rc = proc.wait()
    state, problems = check(index, emb)
    target = expected(corpus, emb)
    totals["lost"] += len(set(target) - set(state))
    totals["duplicated"] += len(set(state) - set(target))
    totals["stale_paths"] += stale_paths(index, corpus)
    totals["corrupt"] += bool(problems)
    (work / "stop-reader").touch()
    out, _ = reader.communicate(timeout=120)
    seen = json.loads(out.strip().splitlines()[-1])
    totals.update({f"reader_{k}": v for k, v in seen.items()})
    done = set(texts(log))
    totals["redone"] += len(killed_texts & done)
    totals["final_run_rc"] = rc
    totals["redone_share_of_killed_work"] = round(
        totals["redone"] / max(1, totals["started_then_killed"]), 4)
    return totals


def rebuild_races(args: argparse.Namespace, work: Path, emb: object, pool: list[str]) -> dict:
    rng = random.Random(args.seed + 1)
    runner = Runner(work, args.embedder == "fake", args.fake_ms)
    out = {"races": 0, "corrupt": 0, "wrong_state": 0, "writer_refused": 0, "orders": []}
    for r in range(args.races):
        base, extra, index = work / f"race{r}-base", work / f"race{r}-extra", work / f"race{r}-idx"
        for d in (base, extra):
            d.mkdir()
        # Small enough that either finishes within the other's 10 s lock wait on a busy
        # machine; a writer that still times out says so (exit 1) and changes nothing.
        half = min(40, len(pool) // 4)
        for i in range(half):
            (base / f"a{i:05d}.txt").write_text(pool[i], encoding="utf-8")
        for i in range(half, min(len(pool), half + rng.randint(10, 30))):
            (extra / f"a{i:05d}.txt").write_text(pool[i], encoding="utf-8")
        seed = work / f"race{r}-seed"
        seed.mkdir()
        (seed / "a99999.txt").write_text(synthetic(99999), encoding="utf-8")
        runner.start(["index", str(seed), "--index", str(index), "-q"])[0].wait()
        writer = ["index", str(extra), "--index", str(index), "-q"]
        rebuild = ["index", str(base), "--index", str(index), "--rebuild", "-q"]
        first, second = (writer, rebuild) if rng.random() < 0.5 else (rebuild, writer)
        p1 = runner.start(first)[0]
        time.sleep(rng.uniform(0, 1.5))
        p2 = runner.start(second)[0]
        rcs = {id(first): p1.wait(), id(second): p2.wait()}
        state, problems = check(index, emb)
        out["races"] += 1
        out["corrupt"] += bool(problems)
        rebuilt, extra_state = expected(base, emb), expected(extra, emb)
        both, unrebuilt = {**rebuilt, **extra_state}, {**expected(seed, emb), **extra_state}
        if rcs[id(writer)] not in (0, 3):  # it waited 10 s for the lock, said so, did nothing
            out["writer_refused"] += 1
            both = rebuilt
        if rcs[id(rebuild)] not in (0, 3):
            out["rebuild_refused"] = out.get("rebuild_refused", 0) + 1
            rebuilt = unrebuilt
        order = "writer last" if state == both else "rebuild last" if state == rebuilt else "?"
        out["orders"].append(order)
        out["wrong_state"] += order == "?"
        print(f"race {r}: {'writer' if first is writer else 'rebuild'} started first; rcs "
              f"{list(rcs.values())}; {order}; {problems if problems else 'OK'}", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=25)
    p.add_argument("--races", type=int, default=5)
    p.add_argument("--embedder", choices=["fake", "real"], default="fake")
    p.add_argument("--fake-ms", type=float, default=4.0,
                   help="fake embedder's cost per text in ms (the real model on 2 busy cores: "
                        "~15-60 texts/s)")
    p.add_argument("--articles", type=int, default=400, help="synthetic article pool")
    p.add_argument("--scifact", type=int, default=0, help="use N SciFact abstracts instead")
    p.add_argument("--resume-at", type=float, help="only: kill one build at this progress")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--rename", type=float, default=0.3,
                   help="chance that the corpus folder is renamed before a run")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()
    from kill_resume import embedder_for, resume_at  # bench/ is on the path (a script)

    if args.scifact and not SCIFACT.exists():
        print(f"no SciFact at {SCIFACT}; skipped", file=sys.stderr)
        return 0
    pool = scifact(args.scifact) if args.scifact else [synthetic(i) for i in range(args.articles)]
    sys.path.insert(0, str(ROOT / "tests"))
    emb = embedder_for(args)
    work = Path(tempfile.mkdtemp(prefix="kill-loop-"))
    t0 = time.monotonic()
    try:
        if args.resume_at is not None:
            result: dict = {"resume": resume_at(args, work, pool)}
        else:
            result = {"kill_loop": kill_loop(args, work, emb, pool),
                      "rebuild_races": rebuild_races(args, work, emb, pool)}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result.update(embedder=args.embedder, fake_ms=args.fake_ms if args.embedder == "fake"
                  else None, seconds=round(time.monotonic() - t0, 1),
                  load=os.getloadavg(), corpus=f"scifact[:{args.scifact}]" if args.scifact
                  else f"{args.articles} synthetic")
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
