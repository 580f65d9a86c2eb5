"""A sync makes the index equal to the folders it is given (issue 27.1): a renamed or moved
corpus folder is followed (unchanged articles re-pointed, not embedded again, reported as
moved), files deleted meanwhile are removed, and no stored path is left that does not exist.
Also: a killed `--rebuild` leaves nothing behind once the next write has run (27.8)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from conftest import child_env, write
from fakes import FakeEmbedder

from rag.index.facade import Index
from rag.index.writer import UPLOAD_NAMESPACE

STORIES = {
    "a.txt": "Harbour reopens after storm\n\nFerries returned to the harbour on Monday. "
             "The breakwater held and cranes were back at work on the quay.",
    "b.txt": "Rail strike ends\n\nTrain drivers accepted a pay deal. Commuters crowded the "
             "platforms as the timetable returned to normal.",
    "c.txt": "Library saved by volunteers\n\nVolunteers repaired the library roof. The "
             "reading room opens again next week for the whole county.",
    "sub/d.txt": "Council approves bridge\n\nThe council approved a footbridge over the "
                 "river after a long consultation with residents.",
}


def make(folder: Path) -> Path:
    for name, text in STORIES.items():
        write(folder / name, text)
    return folder


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)


def assert_paths_exist_under(idx: Index, root: Path) -> None:
    for a in idx.articles():
        assert a.path and Path(a.path).exists(), f"{a.id} points at {a.path}, which is gone"
        assert Path(a.path).resolve().is_relative_to(root.resolve()), (a.id, a.path)


def test_sync_follows_a_renamed_folder_with_a_file_deleted(tmp_path: Path,
                                                           driver: list[str]) -> None:
    """The issue's steps, with the real command: index news, `mv news articles`, delete a
    file, sync articles."""
    news, index = make(tmp_path / "news"), tmp_path / "idx"
    assert run([*driver, "index", str(news), "--index", str(index), "-q"]).returncode == 0
    articles = tmp_path / "articles"
    news.rename(articles)
    (articles / "c.txt").unlink()
    r = run([*driver, "index", str(articles), "--index", str(index), "--sync", "-q"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("0 added, 0 updated, 1 removed, 3 moved"), r.stdout
    assert " 0 chunks embedded" in r.stdout  # re-pointed, not embedded again
    idx = Index.load(index, embedder=FakeEmbedder())
    try:
        assert {a.id for a in idx.articles()} == {"a.txt", "b.txt", "sub/d.txt"}
        assert_paths_exist_under(idx, articles)
        hits = idx.search("volunteers library roof reading room", k=3)
        assert "c.txt" not in {h.article_id for h in hits}  # the deleted one is not cited
        assert all(h.path and Path(h.path).exists() for h in hits)
    finally:
        idx.close()


def test_changed_files_sync_while_the_old_folder_still_exists(tmp_path: Path) -> None:
    news = make(tmp_path / "news")
    idx = Index.build([news], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False)
    articles = tmp_path / "articles"
    shutil.copytree(news, articles)  # the old folder stays where it was
    write(articles / "b.txt", STORIES["b.txt"] + " Services resume at dawn.")
    (articles / "c.txt").unlink()
    r = idx.add([articles], sync=True, progress=False)
    assert r.skipped == ()  # never "id … belongs to the article from <old path>"
    assert (r.added, r.updated, r.removed, r.moved, r.unchanged) == (0, 1, 1, 2, 0)
    assert "Services resume at dawn." in idx.article("b.txt").text
    assert {a.id for a in idx.articles()} == {"a.txt", "b.txt", "sub/d.txt"}
    assert_paths_exist_under(idx, articles)
    again = idx.add([articles], sync=True, progress=False)  # now equal: nothing to do
    assert (again.added, again.updated, again.removed, again.moved, again.unchanged) == \
        (0, 0, 0, 0, 3)


def test_a_renamed_file_and_a_moved_folder_are_not_embedded_again(tmp_path: Path) -> None:
    news = make(tmp_path / "news")
    idx = Index.build([news], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False)
    before = {a.id: a.chunks for a in idx.articles()}
    articles = tmp_path / "articles"
    news.rename(articles)
    (articles / "a.txt").rename(articles / "harbour.txt")
    r = idx.add([articles], sync=True, progress=False)
    assert (r.added, r.removed, r.moved, r.chunks_added, r.embedded) == (0, 0, 4, 0, 0)
    after = {a.id: a.chunks for a in idx.articles()}
    assert after == {("harbour.txt" if k == "a.txt" else k): v for k, v in before.items()}
    assert idx.search("ferries breakwater quay", k=1)[0].article_id == "harbour.txt"
    assert_paths_exist_under(idx, articles)


def test_a_plain_add_from_a_moved_folder_repoints_without_sync(tmp_path: Path) -> None:
    news = make(tmp_path / "news")
    idx = Index.build([news], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False)
    articles = tmp_path / "articles"
    news.rename(articles)
    r = idx.add([articles], progress=False)
    assert (r.moved, r.unchanged, r.removed, r.skipped) == (4, 0, 0, ())
    assert_paths_exist_under(idx, articles)


def test_a_sync_keeps_uploads_and_an_empty_folder_removes_nothing(tmp_path: Path) -> None:
    news = make(tmp_path / "news")
    idx = Index.build([news], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False)
    upload = write(tmp_path / "idx" / "uploads" / "note.txt",
                   "Vineyard harvest begins\n\nPickers brought in the grapes early.")
    idx.add([upload], namespace=UPLOAD_NAMESPACE, progress=False)
    unmounted = tmp_path / "mnt"
    unmounted.mkdir()
    r = idx.add([unmounted], sync=True, progress=False)  # an unmounted drive looks empty
    assert r.removed == 0 and len(idx.articles()) == 5
    assert any("empty" in s.reason for s in r.skipped)
    articles = tmp_path / "articles"
    news.rename(articles)
    r = idx.add([articles], sync=True, progress=False)
    assert r.removed == 0 and f"{UPLOAD_NAMESPACE}note.txt" in {a.id for a in idx.articles()}


def test_a_killed_rebuild_leaves_nothing_after_the_next_write(tmp_path: Path,
                                                              driver: list[str]) -> None:
    news, index = make(tmp_path / "news"), tmp_path / "idx"
    Index.build([news], path=index, embedder=FakeEmbedder(), progress=False).close()
    cmd = [*driver, "index", str(news), "--index", str(index), "--rebuild", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_FAULT_POINT="embedding", RAG_FAULT_WAIT="60"))
    try:
        assert proc.stderr is not None
        assert any("RAG_FAULT_POINT reached: embedding" in line for line in proc.stderr)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    staged = tmp_path / "idx.rebuild"
    assert staged.is_dir()  # what a killed rebuild leaves
    write(news / "e.txt", "Airport expands terminal\n\nA new runway opens for more flights.")
    r = run([*driver, "index", str(news), "--index", str(index), "-q"])
    assert r.returncode == 0, r.stderr
    assert re.match(r"1 added", r.stdout) and not staged.exists()
