"""Uploads and the write lock (issue 27.4): an upload refused because another process holds
the lock leaves nothing in INDEX/uploads/ and says so; a later --rebuild never adds a file
the index did not hold."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import write
from fakes import FakeEmbedder
from test_concurrency import start_paused

from rag.app.service import Service
from rag.index.facade import Index
from rag.index.writer import UPLOAD_NAMESPACE


def service_over(tmp_path: Path) -> Service:
    corpus = tmp_path / "corpus"
    write(corpus / "a.txt", "Harbour reopens\n\nFerries returned to the harbour on Monday.")
    svc = Service(tmp_path / "index", corpus, embedder=FakeEmbedder())
    svc.start()
    svc.index()
    return svc


def holding_the_lock(driver: list[str], folder: Path, index: Path) -> subprocess.Popen[str]:
    """A `rag index` that holds the index's write lock (paused while "embedding")."""
    return start_paused([*driver, "index", str(folder), "--index", str(index), "-q"], 60)


def test_an_upload_refused_by_the_lock_leaves_nothing_and_says_so(tmp_path: Path,
                                                                   driver: list[str]) -> None:
    svc = service_over(tmp_path)
    svc.lock_timeout = 0.5
    upload = write(tmp_path / "incoming" / "tram.txt",
                   "Tram line approved\n\nThe new tram line will cost 280 million euros.")
    other = write(tmp_path / "other" / "b.txt", "Rail strike\n\nTrain drivers accepted a deal.")
    writer = holding_the_lock(driver, other.parent, svc.index_dir)
    try:
        report = svc.add_files([str(upload)])
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert "tram.txt" in report and "another process" in report and "nothing was kept" in report
    assert not (svc.uploads / "tram.txt").exists()
    assert f"{UPLOAD_NAMESPACE}tram.txt" not in {a.id for a in svc.index().articles()}
    # Once the lock is free the same upload goes in, and a rebuild keeps it.
    assert "added 1 article" in svc.add_files([str(upload)])
    svc.index().close()
    rebuilt = Index.rebuild([tmp_path / "corpus"], tmp_path / "index", embedder=FakeEmbedder(),
                            progress=False)
    assert f"{UPLOAD_NAMESPACE}tram.txt" in {a.id for a in rebuilt.articles()}
    rebuilt.close()


def test_a_rebuild_does_not_add_an_upload_the_index_never_held(tmp_path: Path) -> None:
    svc = service_over(tmp_path)
    kept = write(tmp_path / "incoming" / "kept.txt", "Vineyard harvest\n\nPickers began early.")
    svc.add_files([str(kept)])
    svc.index().close()
    # What a process killed between copying and indexing would leave behind.
    stray = write(svc.uploads / "stray.txt", "Airport terminal\n\nA new runway opened today.")
    rebuilt = Index.rebuild([tmp_path / "corpus"], tmp_path / "index", embedder=FakeEmbedder(),
                            progress=False)
    ids = {a.id for a in rebuilt.articles()}
    assert f"{UPLOAD_NAMESPACE}kept.txt" in ids and f"{UPLOAD_NAMESPACE}stray.txt" not in ids
    report = rebuilt.last_report
    assert report is not None
    assert any(s.path == str(stray) and "not in the index" in s.reason for s in report.skipped)
    assert not (tmp_path / "index" / "uploads" / "stray.txt").exists()
    rebuilt.close()


def test_an_upload_that_holds_no_article_is_undone(tmp_path: Path) -> None:
    from rag.index.uploads import add_uploads

    svc = service_over(tmp_path)
    good = write(tmp_path / "incoming" / "note.txt", "Library saved\n\nVolunteers fixed the roof.")
    svc.add_files([str(good)])
    empty = write(tmp_path / "incoming2" / "note.txt", "")  # replaces it with nothing
    new = write(tmp_path / "incoming2" / "new.txt", "")
    report, undone = add_uploads(svc.index(), {(svc.uploads / "note.txt").resolve(): empty,
                                               (svc.uploads / "new.txt").resolve(): new})
    assert {p.name for p in undone} == {"new.txt", "note.txt"} and report.skipped
    assert not (svc.uploads / "new.txt").exists()
    # The file goes back to what the index holds from it.
    assert "Volunteers" in (svc.uploads / "note.txt").read_text()
    assert "Volunteers" in svc.index().article(f"{UPLOAD_NAMESPACE}note.txt").text
    assert not list(svc.uploads.glob(".*"))  # no backup left behind
    svc.index().close()
