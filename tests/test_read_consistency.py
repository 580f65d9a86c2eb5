"""Reads of an open index against another process's writes (issue 27.2, 27.3): a search
and the article lookups for its hits read one version; articles(), article() and stats()
follow a write or a rebuild as a search does.

The writer is the real `rag index` in another process (fake embedder: these are about the
index). Where a moment matters it is held at a fault point: `faiss_write` pauses a write
after its commit and before its new search files are swapped in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import child_env, write
from fakes import FakeEmbedder

from rag.errors import InputError
from rag.index.facade import Index

TESTS = Path(__file__).resolve().parent

GONE = "Harbour storm report\n\nThe harbour master said ferries and cranes were idle on the quay."
CHANGING = "Harbour tide tables\n\nThe harbour tide tables for ferries were printed in {tag}."
STAY = "Rail strike ends\n\nTrain drivers accepted a pay deal and commuters cheered."


def corpus(folder: Path) -> Path:
    write(folder / "gone.txt", GONE)
    write(folder / "changing.txt", CHANGING.format(tag="spring"))
    write(folder / "stay.txt", STAY)
    return folder


def paused_writer(cmd: list[str], point: str, wait: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_FAULT_POINT=point, RAG_FAULT_WAIT=str(wait)))
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"RAG_FAULT_POINT reached: {point}" in line:
            return proc
    proc.kill()
    raise AssertionError(f"the writer never reached {point}")


def assert_lookups_match(idx: Index, hits: list) -> None:
    for h in hits:
        art = idx.article(h.article_id)  # never "no article" for a hit just returned
        assert art.text[h.start:h.end] == h.text, f"{h.article_id}: another version"


def test_a_search_and_its_article_lookups_read_one_version(tmp_path: Path,
                                                           driver: list[str]) -> None:
    folder, index = corpus(tmp_path / "corpus"), tmp_path / "idx"
    live = Index.build([folder], path=index, embedder=FakeEmbedder(), progress=False)
    assert len(live.search("harbour ferries", k=3)) == 3
    (folder / "gone.txt").unlink()
    write(folder / "changing.txt", CHANGING.format(tag="autumn, with corrections"))
    cmd = [*driver, "index", str(folder), "--index", str(index), "--sync", "-q"]
    writer = paused_writer(cmd, "faiss_write", 60)  # committed; search files not swapped yet
    try:
        hits = live.search("harbour ferries quay tide", k=3)  # the version before the write
        assert {"gone.txt", "changing.txt"} <= {h.article_id for h in hits}
        assert_lookups_match(live, hits)
        assert {a.id for a in live.articles()} == {"gone.txt", "changing.txt", "stay.txt"}
        # A reader opened now: whatever it returns, its articles are there, as returned.
        fresh = Index.load(index, embedder=FakeEmbedder())
        fresh_hits = fresh.search("harbour ferries quay tide", k=3)
        assert_lookups_match(fresh, fresh_hits)
        ids = {a.id for a in fresh.articles()}
        assert {h.article_id for h in fresh_hits} <= ids
        fresh.close()
    finally:
        os.kill(writer.pid, signal.SIGCONT)
        writer.kill()
        writer.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    # The write is finished: this thread's last hits still read their own version...
    assert_lookups_match(live, hits)
    # ...while every other read is of the new one, and the next search moves on.
    assert {a.id for a in live.articles()} == {"changing.txt", "stay.txt"}
    assert live.stats().articles == 2
    new_hits = live.search("harbour ferries quay tide", k=2)
    assert "gone.txt" not in {h.article_id for h in new_hits}
    assert_lookups_match(live, new_hits)
    with pytest.raises(InputError, match="no article"):
        live.article("gone.txt")
    assert "autumn" in live.article("changing.txt").text
    live.close()


READER = """\
import json, sys, time
sys.path.insert(0, {tests!r})
from fakes import FakeEmbedder
from rag.index.facade import Index

idx = Index.load(sys.argv[1], embedder=FakeEmbedder())
out = {{"searches": 0, "lookups": 0, "errors": []}}
print("ready", flush=True)
stop = time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:
    try:
        hits = idx.search("harbour ferries bulletin tide pier", k=4)
        listed = {{a.id for a in idx.articles()}}
        for h in hits:
            art = idx.article(h.article_id)
            out["lookups"] += 1
            if art.text[h.start:h.end] != h.text:
                out["errors"].append(f"{{h.article_id}}: text of another version")
        out["searches"] += 1
    except Exception as e:
        out["errors"].append(f"{{type(e).__name__}}: {{e}}")
print(json.dumps(out), flush=True)
"""


@pytest.mark.slow
def test_searches_during_syncs_never_meet_a_missing_article(tmp_path: Path,
                                                           driver: list[str]) -> None:
    """The issue's measurement in small: an index held open in one process searching and
    opening every hit's article while `rag index --sync` runs again and again in another,
    each run removing, changing and adding articles."""
    folder, index = tmp_path / "corpus", tmp_path / "idx"
    for j in range(6):
        write(folder / f"live{j}.txt", f"Harbour bulletin {j}\n\nGen0 tide at the pier for ferries.")
    Index.build([folder], path=index, embedder=FakeEmbedder(), progress=False).close()
    script = tmp_path / "reader.py"
    script.write_text(READER.format(tests=str(TESTS)))
    reader = subprocess.Popen([sys.executable, str(script), str(index), "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env())
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    cmd = [*driver, "index", str(folder), "--index", str(index), "--sync", "-q"]
    gen, start = 0, time.monotonic()
    while time.monotonic() - start < 16:
        gen += 1
        for j in range(6):
            if (j + gen) % 3 == 0:
                (folder / f"live{j}.txt").unlink(missing_ok=True)
            else:
                write(folder / f"live{j}.txt", f"Harbour bulletin {j}\n\nGen{gen} tide at the "
                      f"pier for ferries{' and the harbour' * (gen % 4)}.")
        r = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
        assert r.returncode == 0, r.stderr
    out, err = reader.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == [], result["errors"][:5]
    assert result["searches"] >= 20 and gen >= 3, (result["searches"], gen)


def test_every_read_of_a_long_lived_index_follows_another_process_rebuild(
        tmp_path: Path, driver: list[str]) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for i in range(3):
        write(old / f"a{i}.txt", f"Old story {i}\n\nHarbour ferries and the quay, part {i}.")
    for i in range(2):
        write(new / f"b{i}.txt", f"New story {i}\n\nVineyard grapes and the cellar, part {i}.")
    index = tmp_path / "idx"
    searched = Index.build([old], path=index, embedder=FakeEmbedder(), progress=False)
    assert searched.search("harbour", k=1)
    listed = Index.load(index, embedder=FakeEmbedder())  # never searched: no search files
    assert listed.stats().articles == 3
    cmd = [*driver, "index", str(new), "--index", str(index), "--rebuild", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    for idx in (searched, listed):
        assert {a.id for a in idx.articles()} == {"b0.txt", "b1.txt"}
        assert idx.article("b1.txt").title == "New story 1"
        assert idx.stats().articles == 2
        with pytest.raises(InputError):
            idx.article("a0.txt")
        assert idx.search("vineyard grapes cellar", k=1)[0].article_id.startswith("b")
        idx.close()
