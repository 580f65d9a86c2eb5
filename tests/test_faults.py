"""Faults with real processes: kill -9 mid-write, disk full, read-only folders.

What must hold after every fault: `Index.load` works, search works, the index holds exactly
the old or exactly the new state (article ids, content hashes, chunks per article equal to
a fresh build's), FAISS and BM25 hold exactly the live chunks, and running the same command
again finishes the job with no duplicate and nothing missing.

Most tests run the real CLI code (`rag.cli.main`) in a subprocess with the fake embedder
swapped in at the boundary (a tiny driver script), so they take seconds. One test kills the
real `rag index` with the real model at random moments.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import child_env
from fakes import FakeEmbedder

from rag.embed.cache import CACHE_FILE
from rag.embed.embedder import DEFAULT_MODEL
from rag.errors import IndexWriteError
from rag.faults import POINTS
from rag.index.facade import Index
from rag.ingest.articles import Article, iter_articles
from rag.ingest.chunking import ChunkSpec, chunk_article

TESTS = Path(__file__).resolve().parent
SEED = TESTS.parent / "seeds" / "000_1511c0eeef884a91.txt"

# Kill points before the store's commit leave the old state; after it, the new one
# (the derived FAISS/BM25 files are rebuilt from the store on load).
OLD_AFTER_KILL = {"embedding", "store_write"}
assert OLD_AFTER_KILL < set(POINTS)

HARBOUR = """Published 09:10 IST, March 3rd 2025
Harbour Reopens After Three-Day Storm
Ferries resumed service on Monday after the worst storm in a decade closed the port.
The harbour master said the breakwater held, although two cranes were damaged by the wind.
Fishing crews returned to the quay before dawn to check their boats and nets.
Officials expect cargo traffic to return to normal by the end of the week.
"""

HARBOUR_V2 = HARBOUR + """Updated 18:40 IST, March 3rd 2025
In the afternoon the port authority published a fuller account of the damage.
Engineers found cracks in the older northern pier, which will stay closed for repairs.
The city council approved emergency funds to replace the two damaged cranes before summer.
Insurers said claims from boat owners were lower than after the storm of 2014.
A spokesperson thanked volunteers who helped secure moorings during the night.
The ferry operator added late sailings to clear the backlog of stranded passengers.
Tourism groups warned that the closure had cost hotels a busy holiday weekend.
Meteorologists said another front could bring strong winds later in the month.
The harbour master asked crews to keep storm lines in place until then.
"""

LIBRARY = """Published 11:00 IST, April 8th 2025
Village Library Saved by Volunteers
A village library that was due to close has been saved by a group of volunteers.
They raised money for a new roof and agreed to staff the reading room on weekends.
The county will keep paying for books and the internet connection.
"""

RAIL = """Published 07:30 IST, May 6th 2025
Rail Strike Ends After Pay Deal
Train drivers returned to work on Tuesday after union members accepted a pay offer.
The agreement raises wages over two years and limits weekend shifts.
Commuters faced crowded platforms as the first trains ran late.
"""

BRIDGE = """Published 16:45 IST, June 2nd 2025
Council Approves New River Bridge
The council approved a new footbridge over the river after a long public consultation.
Construction will start in the autumn and is expected to take eighteen months.
Residents on the east bank welcomed a shorter walk to the railway station.
"""

# Old corpus -> new corpus: one article changed (and longer), one unchanged, one removed,
# one added. The seed article is common to both.
OLD = {"harbour.txt": HARBOUR, "library.txt": LIBRARY, "rail.txt": RAIL}
NEW = {"harbour.txt": HARBOUR_V2, "library.txt": LIBRARY, "bridge.txt": BRIDGE}

State = dict[str, tuple[str, int]]  # article id -> (content hash, live chunks)


# -- helpers -------------------------------------------------------------------------------
def write_corpus(folder: Path, files: dict[str, str]) -> Path:
    """Make `folder` hold exactly the seed article plus `files`."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        if f.name != SEED.name and f.name not in files:
            f.unlink()
    if not (folder / SEED.name).exists():
        shutil.copyfile(SEED, folder / SEED.name)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def expected_state(files: dict[str, str], tmp: Path) -> State:
    """The state a fresh build of seed + `files` gives (chunking as the index does it; none
    of these articles comes near the model's 256-token limit, so no extra split applies)."""
    folder = write_corpus(tmp, files)
    out: State = {}
    for art in iter_articles([folder]):
        assert isinstance(art, Article), art
        out[art.id] = (art.content_hash, len(chunk_article(art.id, art.text, ChunkSpec())))
    return out


def connect_ro(index: Path) -> sqlite3.Connection:
    """Read the store with no writer running; on a full or read-only disk SQLite cannot
    create the WAL's side files for a plain read-only open, so read the file as immutable."""
    db = sqlite3.connect(f"file:{index / 'store.sqlite'}?mode=ro", uri=True)
    try:
        db.execute("SELECT 1 FROM meta").fetchall()
        return db
    except sqlite3.OperationalError:
        db.close()
        return sqlite3.connect(f"file:{index / 'store.sqlite'}?immutable=1", uri=True)


def store_state(index: Path) -> State:
    """What the store holds, read straight from SQLite (read-only), with integrity checks."""
    db = connect_ro(index)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        arts = dict(db.execute("SELECT id, content_hash FROM articles WHERE deleted IS NULL"))
        counts = dict(db.execute(
            "SELECT article_id, count(*) FROM chunks WHERE deleted IS NULL GROUP BY article_id"))
        dups = db.execute(
            "SELECT article_id, ord, count(*) FROM chunks WHERE deleted IS NULL "
            "GROUP BY article_id, ord HAVING count(*) > 1").fetchall()
        orphans = db.execute(
            "SELECT count(*) FROM chunks c WHERE c.deleted IS NULL AND NOT EXISTS (SELECT 1 "
            "FROM articles a WHERE a.id = c.article_id AND a.deleted IS NULL)").fetchone()[0]
    finally:
        db.close()
    assert not dups, f"duplicate live chunks: {dups}"
    assert orphans == 0, "live chunks of a removed article"
    return {a: (h, counts.get(a, 0)) for a, h in arts.items()}


def live_chunk_ids(index: Path) -> list[int]:
    db = connect_ro(index)
    try:
        return sorted(r[0] for r in db.execute("SELECT id FROM chunks WHERE deleted IS NULL"))
    finally:
        db.close()


def check_loadable(index: Path, embedder: object) -> State:
    """Index.load works, the derived indexes hold exactly the live chunks, search works;
    returns the state (checked against the public listing too)."""
    state = store_state(index)
    idx = Index.load(index, embedder=embedder)  # type: ignore[arg-type]
    try:
        listed = {a.id: (a.content_hash, a.chunks) for a in idx.articles()}
        assert listed == state
        live = live_chunk_ids(index)
        derived = idx._current()  # the FAISS/BM25 state searches use
        assert sorted(int(i) for i in derived.lexical.live_ids) == live
        assert derived.vectors.size == len(live)
        if live:
            # An exhaustive vector search returns every live chunk exactly once.
            qvec = idx.embedder.embed(["harbour storm ferries"])[0]
            _, ids = derived.vectors.search(qvec, len(live) + 5)
            assert sorted(int(i) for i in ids) == live
            hits = idx.search("harbour storm ferries", k=3)
            assert len(hits) == 3
            for h in hits:  # each hit quotes its article exactly
                assert idx.article(h.article_id).text[h.start:h.end] == h.text
        else:
            assert idx.search("harbour storm ferries", k=3) == []
    finally:
        idx.close()
        gc.collect()
    return state


def assert_clean(index: Path) -> None:
    """After a completed write: derived files of the store's version only, no temporaries."""
    db = connect_ro(index)
    version = int(db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])
    db.close()
    # The vector cache is not part of the index's state (never a source of truth).
    names = {p.name for p in index.iterdir()} - {
        "store.sqlite-wal", "store.sqlite-shm", CACHE_FILE, f"{CACHE_FILE}-wal", f"{CACHE_FILE}-shm"}
    assert names == {"store.sqlite", "manifest.json", ".write.lock", f"vectors-{version}.faiss",
                     f"bm25-{version}"}, names


def run(cmd: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=child_env(**env))


def kill_at(cmd: list[str], point: str, timeout: float = 120) -> str:
    """Run `cmd` until it announces fault point `point`, then kill -9 it; its stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_FAULT_POINT=point, RAG_FAULT_WAIT="120"))
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    err = ""
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            err += line
            if line.strip() == f"RAG_FAULT_POINT reached: {point}":
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    assert f"RAG_FAULT_POINT reached: {point}" in err, f"never reached {point}:\n{err}"
    assert proc.returncode == -signal.SIGKILL
    return err


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tiny tmpfs at `where` (we are root in CI); skip the test where mounting is refused."""
    where.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command to make a small filesystem")
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or 'not permitted'}")
    try:
        yield where
    finally:
        gc.collect()  # close any SQLite connection still open on it
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(fs: Path, leave: int) -> Path:
    """Fill the filesystem at `fs` until only `leave` bytes are free."""
    st = os.statvfs(fs)
    filler = fs / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, State]:
    tmp = tmp_path_factory.mktemp("refs")
    return {"old": expected_state(OLD, tmp / "old"), "new": expected_state(NEW, tmp / "new")}


def build_old(corpus: Path, index: Path, embedder: object | None = None) -> None:
    write_corpus(corpus, OLD)
    idx = Index.build([corpus], path=index, embedder=embedder or FakeEmbedder(),  # type: ignore[arg-type]
                      progress=False)
    idx.close()
    del idx
    gc.collect()


def test_reference_matches_a_fresh_build(tmp_path: Path, refs: dict[str, State]) -> None:
    """The expected states really are what a fresh build gives (the oracle is right)."""
    for name, files in (("old", OLD), ("new", NEW)):
        corpus = write_corpus(tmp_path / name, files)
        idx = Index.build([corpus], path=tmp_path / f"idx-{name}", embedder=FakeEmbedder(),
                          progress=False)
        idx.close()
        assert store_state(tmp_path / f"idx-{name}") == refs[name]
    assert refs["old"] != refs["new"]
    assert refs["old"]["harbour.txt"][1] < refs["new"]["harbour.txt"][1]


# -- kill -9 at each named point -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["build", "update"])
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_fault_point(point: str, scenario: str, tmp_path: Path, driver: list[str],
                             refs: dict[str, State]) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    if scenario == "update":
        build_old(corpus, index)
        assert store_state(index) == refs["old"]
        before = refs["old"]
    else:
        before = {}
    write_corpus(corpus, NEW)
    cmd = [*driver, "index", str(corpus), "--index", str(index), "--sync", "-q"]

    kill_at(cmd, point)

    after = check_loadable(index, FakeEmbedder())
    assert after == (before if point in OLD_AFTER_KILL else refs["new"]), point

    done = run(cmd)
    assert done.returncode == 0, done.stderr
    assert check_loadable(index, FakeEmbedder()) == refs["new"]
    assert_clean(index)


@pytest.mark.slow
def test_rerun_finishes_a_write_killed_after_commit(tmp_path: Path, driver: list[str],
                                                    refs: dict[str, State]) -> None:
    """Killed after the store's commit and re-run straight away (no load in between): the
    re-run writes the missing FAISS/BM25 files itself."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    write_corpus(corpus, NEW)
    cmd = [*driver, "index", str(corpus), "--index", str(index), "--sync", "-q"]
    kill_at(cmd, "faiss_write")
    assert store_state(index) == refs["new"]
    done = run(cmd)
    assert done.returncode == 0, done.stderr
    assert "0 added, 0 updated, 0 removed" in done.stdout
    assert_clean(index)
    assert check_loadable(index, FakeEmbedder()) == refs["new"]


# -- kill -9 at random moments, real CLI, real model ---------------------------------------
class DefaultNamed(FakeEmbedder):
    """Loads an index built with the default model without loading the model itself
    (for checking structure and search plumbing, not relevance)."""

    name = DEFAULT_MODEL

    def __init__(self) -> None:
        super().__init__(dim=384)


@pytest.mark.slow
def test_random_kills_real_cli(tmp_path: Path) -> None:
    rng = random.Random(20241126)
    iterations = 10
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    states = {"old": expected_state(OLD, tmp_path / "ref-old"),
              "new": expected_state(NEW, tmp_path / "ref-new")}
    cmd = [sys.executable, "-m", "rag", "index", str(corpus), "--index", str(index), "--sync",
           "--threads", "1"]

    def start() -> tuple[subprocess.Popen[bytes], threading.Event, list[bytes]]:
        """Start the CLI; the event fires when its progress bar appears (the write begins)."""
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=child_env())
        started, err = threading.Event(), []

        def read() -> None:
            assert proc.stderr is not None
            while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
                err.append(chunk)
                if b"indexing" in b"".join(err[-2:]):
                    started.set()
            started.set()

        threading.Thread(target=read, daemon=True).start()
        return proc, started, err

    # A full, un-killed build times the indexing phase that the kills aim at.
    write_corpus(corpus, OLD)
    proc, started, err = start()
    assert started.wait(180)
    t0 = time.monotonic()
    assert proc.wait(300) == 0, b"".join(err).decode(errors="replace")
    span = time.monotonic() - t0
    current = check_loadable(index, DefaultNamed())
    assert current == states["old"]

    log = []
    for i in range(iterations):
        # Always towards the other state, so every run has articles to embed and write.
        target = "new" if current == states["old"] else "old"
        write_corpus(corpus, NEW if target == "new" else OLD)
        before = current
        proc, started, err = start()
        assert started.wait(180), b"".join(err).decode(errors="replace")
        delay = rng.uniform(0.2, 1.3) * span
        t0 = time.monotonic()
        try:
            rc = proc.wait(delay)
            span = time.monotonic() - t0  # a run that finished times the next kills
            what = f"finished in {span:.1f}s before the kill at {delay:.1f}s"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
            what = f"killed {delay:.1f}s into indexing"
        current = check_loadable(index, DefaultNamed())
        got = next((name for name, s in states.items() if s == current), "neither")
        log.append(f"run {i} towards {target}: {what} (rc {rc}); index holds {got}")
        assert current in (before, states[target]), "\n".join(log)
        if rc == 0:
            assert current == states[target], "\n".join(log)

    write_corpus(corpus, NEW)
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert check_loadable(index, DefaultNamed()) == states["new"], "\n".join(log)
    assert_clean(index)
    print("\n".join(log))


# -- disk full -----------------------------------------------------------------------------
@pytest.mark.slow
def test_disk_full_cli_reports_and_keeps_the_index(tmp_path: Path, driver: list[str],
                                                   refs: dict[str, State]) -> None:
    with tmpfs(tmp_path / "fs", "8m") as fs:
        corpus, index = tmp_path / "corpus", fs / "index"
        build_old(corpus, index)
        write_corpus(corpus, NEW)
        filler = fill(fs, 0)
        cmd = [*driver, "index", str(corpus), "--index", str(index), "--sync", "-q"]

        r = run(cmd)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "disk space" in lines[0]
        # Searching a full disk's index still works (nothing needs writing).
        assert check_loadable(index, FakeEmbedder()) == refs["old"]

        filler.unlink()
        r = run(cmd)
        assert r.returncode == 0, r.stderr
        assert check_loadable(index, FakeEmbedder()) == refs["new"]
        assert_clean(index)


@pytest.mark.slow
def test_disk_full_at_every_stage(tmp_path: Path) -> None:
    """Sweep the free space so the disk fills during the store write, during the FAISS/BM25
    write, or not at all: never a crash, always old or new state, a re-run completes."""
    corpus = tmp_path / "corpus"
    big = {f"story{i}.txt": f"Story {i}\n\n" + " ".join(
        f"The council met on day {d} and discussed the harbour, the river bridge and the "
        f"village library for the {i}th time." for d in range(120)) for i in range(5)}
    embedder = FakeEmbedder(dim=384)  # bigger vectors: a wide window to fail in FAISS

    def fresh(at: Path) -> None:
        write_corpus(corpus, OLD)
        idx = Index.build([corpus], path=at, embedder=embedder, progress=False)
        idx.close()

    with tmpfs(tmp_path / "fs", "16m") as fs:
        # Measure how much one update needs, then fail it at many points below that.
        fresh(fs / "probe")
        old_state = store_state(fs / "probe")
        free0 = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
        write_corpus(corpus, {**OLD, **big})
        idx = Index.open(fs / "probe", embedder=embedder)
        idx.add([corpus], progress=False)
        idx.close()
        new_state = store_state(fs / "probe")
        need = free0 - os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
        shutil.rmtree(fs / "probe")

        outcomes = []
        step = max(64 * 1024, need // 12)
        for n, leave in enumerate(range(0, need + 4 * step, step)):
            at = fs / f"index{n}"
            fresh(at)
            filler = fill(fs, leave)
            write_corpus(corpus, {**OLD, **big})
            idx = Index.open(at, embedder=embedder)
            try:
                idx.add([corpus], progress=False)
                error = ""
            except IndexWriteError as e:
                error = str(e)
            finally:
                idx.close()
                del idx
            state = check_loadable(at, embedder)
            kind = "ok" if not error else ("store" if state == old_state else "derived")
            outcomes.append((leave // 1024, kind))
            assert state in (old_state, new_state), (leave, error)
            if not error:
                assert state == new_state
            else:
                assert "\n" not in error and "disk space" in error, error
            filler.unlink()
            idx = Index.open(at, embedder=embedder)
            idx.add([corpus], progress=False)  # the same command again finishes the job
            idx.close()
            del idx
            assert store_state(at) == new_state
            assert_clean(at)
            shutil.rmtree(at)
            gc.collect()
        kinds = {k for _, k in outcomes}
        assert {"store", "derived", "ok"} <= kinds, outcomes


# -- read-only folder, and a file where the folder should be --------------------------------
@pytest.mark.slow
def test_read_only_index_folder(tmp_path: Path, driver: list[str],
                                refs: dict[str, State]) -> None:
    """Root ignores chmod, so the folder sits on a tmpfs remounted read-only."""
    with tmpfs(tmp_path / "fs", "8m") as fs:
        corpus, index = tmp_path / "corpus", fs / "index"
        build_old(corpus, index)
        r = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True,
                           text=True)
        if r.returncode:
            pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
        try:
            # Searching a read-only index works (SQLite's WAL side files cannot be created).
            assert check_loadable(index, FakeEmbedder()) == refs["old"]
            write_corpus(corpus, NEW)
            r2 = run([*driver, "index", str(corpus), "--index", str(index), "--sync", "-q"])
            assert r2.returncode == 1, r2.stderr
            lines = r2.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), r2.stderr
            assert "writable" in lines[0] and "rebuild" not in lines[0], lines[0]
        finally:
            gc.collect()
            subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
        assert check_loadable(index, FakeEmbedder()) == refs["old"]


@pytest.mark.slow
def test_index_path_is_a_file(tmp_path: Path, driver: list[str]) -> None:
    corpus = write_corpus(tmp_path / "corpus", OLD)
    blocker = tmp_path / "index"
    blocker.write_text("not a folder")
    r = run([*driver, "index", str(corpus), "--index", str(blocker), "-q"])
    assert r.returncode == 1
    assert r.stderr.startswith("error: cannot create index folder") and "--index" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert blocker.read_text() == "not a folder"


def test_derived_write_failure_is_clean(tmp_path: Path, refs: dict[str, State]) -> None:
    """FAISS reports write errors as RuntimeError; they must surface as IndexWriteError and
    leave a loadable index (the store has committed, so: the new state)."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    (index / ".vectors-2.faiss.tmp").mkdir()  # FAISS cannot open its temporary file
    write_corpus(corpus, NEW)
    idx = Index.open(index, embedder=FakeEmbedder())
    with pytest.raises(IndexWriteError, match="run the same command again"):
        idx.add([corpus], sync=True, progress=False)
    idx.close()
    assert check_loadable(index, FakeEmbedder()) == refs["new"]  # rebuilt in memory
    (index / ".vectors-2.faiss.tmp").rmdir()
    idx = Index.open(index, embedder=FakeEmbedder())
    report = idx.add([corpus], sync=True, progress=False)
    idx.close()
    assert (report.added, report.updated, report.removed) == (0, 0, 0)
    assert_clean(index)


def test_a_write_removes_temporaries_left_by_a_crashed_one(tmp_path: Path,
                                                           refs: dict[str, State]) -> None:
    """A write killed (or out of space) while writing version N's files leaves partial
    temporaries; if N's files are never written again, the next write removes them."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    (index / ".vectors-7.faiss.tmp").write_bytes(b"partial")
    (index / ".bm25-7.tmp").mkdir()
    (index / ".bm25-7.tmp" / "ids.npy").write_bytes(b"partial")
    write_corpus(corpus, NEW)
    idx = Index.open(index, embedder=FakeEmbedder())
    idx.add([corpus], sync=True, progress=False)
    idx.close()
    assert_clean(index)
    assert check_loadable(index, FakeEmbedder()) == refs["new"]


def test_update_in_a_fresh_process_starts_from_the_previous_files(
        tmp_path: Path, refs: dict[str, State], monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag index FILE` never searches, so it has no state loaded: it must update the
    previous version's FAISS file, not rebuild (and, at 200k+ chunks, retrain IVF)."""
    from rag.index.vectors import Vectors

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    write_corpus(corpus, NEW)

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the FAISS index was rebuilt from scratch")

    monkeypatch.setattr(Vectors, "build", classmethod(no_rebuild))
    idx = Index.open(index, embedder=FakeEmbedder())  # a fresh object: nothing loaded
    idx.add([corpus], sync=True, progress=False)
    idx.close()
    monkeypatch.undo()
    assert_clean(index)
    assert check_loadable(index, FakeEmbedder()) == refs["new"]


# -- issue 16: rebuild under the lock, atomic swaps, true messages, resumable indexing -------
_DRIVER = """\
import os, signal, sys
sys.path.insert(0, {tests!r})
from fakes import FakeEmbedder
import rag.cli
import rag.index.rebuild

class Counting(FakeEmbedder):
    \"\"\"Logs the texts of each call; kill -9s its own process at call RAG_TEST_KILL_AT.\"\"\"
    calls = 0

    def embed(self, texts):
        Counting.calls += 1
        if Counting.calls == int(os.environ.get("RAG_TEST_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        with open(os.environ.get("RAG_TEST_LOG", os.devnull), "a") as f:
            f.write(f"{{len(texts)}}\\n")
        return super().embed(texts)

if os.environ.get("RAG_TEST_NO_EXCHANGE"):  # the two-rename swap of systems without it
    rag.index.rebuild._exchange = lambda a, b: False
sys.exit(rag.cli.main(sys.argv[1:], embedder=Counting()))
"""


@pytest.fixture
def counting(tmp_path: Path) -> list[str]:
    script = tmp_path / "counting_driver.py"
    script.write_text(_DRIVER.format(tests=str(TESTS)))
    return [sys.executable, str(script)]


def embedded(log: Path) -> int:
    """Texts the model embedded, from a counting driver's log."""
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


def many_articles(folder: Path, n: int, tag: str = "") -> Path:
    """`n` one-chunk articles: several embedding batches (128 chunks each)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"a{i:04d}.txt").write_text(
            f"Story {i} {tag}\nThe council met on day {i} to discuss the harbour, the ferries "
            f"and storm number {i}. Residents asked questions {tag}.\n", encoding="utf-8")
    return folder


def test_a_killed_run_resumes_without_embedding_again(tmp_path: Path,
                                                      counting: list[str]) -> None:
    """kill -9 in the middle of embedding, then the same command: only what was not yet
    embedded is embedded (the vector cache), and the index equals a clean build."""
    corpus = many_articles(tmp_path / "corpus", 400)
    clean, index = tmp_path / "clean", tmp_path / "index"
    cmd = [*counting, "index", str(corpus), "--sync", "-q", "--index"]
    r = run([*cmd, str(clean)], RAG_TEST_LOG=str(tmp_path / "clean.log"))
    assert r.returncode == 0, r.stderr
    total = embedded(tmp_path / "clean.log")
    # Each batch is one call (the index stores no sentence vectors): call 3 starts batch 3.
    r = run([*cmd, str(index)], RAG_TEST_LOG=str(tmp_path / "killed.log"), RAG_TEST_KILL_AT="3")
    assert r.returncode == -signal.SIGKILL
    before_kill = embedded(tmp_path / "killed.log")
    assert 0 < before_kill < total
    r = run([*cmd, str(index)], RAG_TEST_LOG=str(tmp_path / "rerun.log"))
    assert r.returncode == 0, r.stderr
    assert embedded(tmp_path / "rerun.log") == total - before_kill  # nothing embedded twice
    assert "vectors reused from the vector cache" in r.stdout
    assert store_state(index) == store_state(clean)
    assert_clean(index)


def test_a_broken_vector_cache_is_ignored(tmp_path: Path) -> None:
    """The cache is never a source of truth: a corrupt file or a torn row costs only time."""
    from rag.embed.cache import VectorCache

    fake = FakeEmbedder()
    cache = VectorCache(tmp_path / "c.sqlite", fake.name, fake.dim)
    cache.put(["a text"], fake.embed(["a text"]), "fp32")
    assert cache._db is not None
    with cache._db:  # a row whose bytes do not match their checksum
        cache._db.execute("UPDATE vectors SET vec=zeroblob(length(vec))")
    assert cache.get(["a text"], ["fp32"]) == [None]
    cache.close()
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, OLD)
    index.mkdir()
    (index / CACHE_FILE).write_bytes(b"not a database" * 100)
    idx = Index.build([corpus], path=index, embedder=FakeEmbedder(), progress=False)
    idx.close()
    assert store_state(index) == expected_state(OLD, tmp_path / "ref")


def test_disk_full_after_the_commit_says_the_articles_are_saved(tmp_path: Path) -> None:
    """A failure writing the derived files comes after the store's commit: the message must
    say the new articles are in, not that the previous index is intact."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    (index / ".bm25-2.tmp").write_text("in the way")  # the BM25 temporary cannot be made
    write_corpus(corpus, NEW)
    idx = Index.open(index, embedder=FakeEmbedder())
    with pytest.raises(IndexWriteError) as e:
        idx.add([corpus], sync=True, progress=False)
    idx.close()
    assert "intact" not in str(e.value)
    assert "articles are saved" in str(e.value) and "run the same command again" in str(e.value)
    (index / ".bm25-2.tmp").unlink()
    assert check_loadable(index, FakeEmbedder()) == expected_state(NEW, tmp_path / "ref")


class _Failing(FakeEmbedder):
    """Fails on its second call: a model crash half-way through a rebuild."""

    calls = 0

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the model crashed")
        return super().embed(texts)


def test_a_failed_rebuild_leaves_the_old_index_and_no_staging_folder(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    many_articles(corpus / "more", 300)
    with pytest.raises(RuntimeError, match="crashed"):
        Index.rebuild([corpus], index, embedder=_Failing(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "index"]
    assert check_loadable(index, FakeEmbedder()) == expected_state(OLD, tmp_path / "ref")


@pytest.mark.parametrize("point,exchange", [("rebuild_swap", True),
                                            ("rebuild_swap_half", False)])
def test_a_rebuild_killed_at_its_swap_leaves_old_or_new(
        point: str, exchange: bool, tmp_path: Path, counting: list[str]) -> None:
    """kill -9 just before the swap (old index, intact) or, where the OS has no atomic
    exchange, between the two renames (the next open completes the recorded swap)."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    write_corpus(corpus, NEW)
    env = {} if exchange else {"RAG_TEST_NO_EXCHANGE": "1"}
    cmd = [*counting, "index", str(corpus), "--index", str(index), "--rebuild", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_FAULT_POINT=point, RAG_FAULT_WAIT="60", **env))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip() == f"RAG_FAULT_POINT reached: {point}":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    want = refs_for(OLD if exchange else NEW, tmp_path / "ref")
    Index.load(index, embedder=FakeEmbedder()).close()  # the next command: never "no index"
    assert check_loadable(index, FakeEmbedder()) == want
    r = run(cmd, **env)  # and the same command finishes the job, leaving nothing behind
    assert r.returncode == 0, r.stderr
    assert check_loadable(index, FakeEmbedder()) == refs_for(NEW, tmp_path / "ref2")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".py")) == \
        ["corpus", "index", "ref", "ref2"]


def refs_for(files: dict[str, str], tmp: Path) -> State:
    return expected_state(files, tmp)


def test_rebuild_keeps_the_apps_uploads(tmp_path: Path) -> None:
    from rag.index.writer import UPLOAD_NAMESPACE

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_old(corpus, index)
    uploads = index / "uploads"
    uploads.mkdir()
    (uploads / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    idx = Index.open(index, embedder=FakeEmbedder())
    idx.add([uploads / "bridge.txt"], progress=False, namespace=UPLOAD_NAMESPACE)
    idx.close()
    new = Index.rebuild([corpus], index, embedder=FakeEmbedder(), progress=False)
    try:
        ids = {a.id for a in new.articles()}
        assert f"{UPLOAD_NAMESPACE}bridge.txt" in ids
        assert (index / "uploads" / "bridge.txt").read_text(encoding="utf-8") == BRIDGE
        assert new.search("footbridge river", k=1)[0].article_id == "upload:bridge.txt"
    finally:
        new.close()
