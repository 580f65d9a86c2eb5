"""Indexing on Ray and sharded search: the same index and the same answers as one machine.

One local Ray (2 CPUs) serves the whole session; the kill tests start their own in a
`rag index --ray local` subprocess and clean up its processes after the kill -9.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SEEDS, child_env, write
from fakes import FakeEmbedder

from rag.index.facade import Index

ray = pytest.importorskip("ray", reason='needs the scale extra: pip install ".[scale]"')

TESTS = Path(__file__).resolve().parent
NASTY = TESTS / "data" / "nasty"

STORY = """Published 09:10 IST, March {day}rd 2025
{title}
{body} The harbour master said the breakwater held, although two cranes were damaged.
Fishing crews returned to the quay before dawn to check their boats and nets on {day} March.
Officials expect cargo traffic to return to normal by the end of the week, the council said.
Engineers found cracks in the older northern pier, which will stay closed for repairs.
"""
TOPICS = ["Harbour reopens after storm", "Council approves flood defences",
          "Rail strike ends after talks", "New bridge opens to traffic",
          "Hospital wing named after nurse", "Schools close for heatwave"]


def corpus(folder: Path, n: int = len(TOPICS)) -> Path:
    for i, title in enumerate(TOPICS[:n]):
        write(folder / f"story_{i}.txt", STORY.format(day=i + 3, title=title,
                                                      body=f"{title} on Monday. " * (i + 2)))
    return folder


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """One in-process Ray with 2 CPUs for the session (workers unpickle the test fakes)."""
    import fakes
    import ray.cloudpickle

    from rag.scale.ray_ingest import connect

    ray.cloudpickle.register_pickle_by_value(fakes)
    yield connect("local", num_cpus=2)
    ray.shutdown()


def dump(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], dict[tuple[str, int], np.ndarray]]:
    """(articles, chunks, vectors by (article id, ord)) of the store at `path`."""
    db = sqlite3.connect(path / "store.sqlite")
    try:
        arts = sorted(db.execute(
            "SELECT id, title, content_hash, path FROM articles WHERE deleted IS NULL"))
        chunks, vecs = [], {}
        for aid, o, a, b, text, blob, sent in db.execute(
                'SELECT article_id, ord, start, "end", text, vector, s.chunk_id IS NOT NULL '
                "FROM chunks c LEFT JOIN sentences s ON s.chunk_id = c.id "
                "WHERE deleted IS NULL"):
            chunks.append((aid, o, a, b, text, sent))
            vecs[(aid, o)] = np.frombuffer(blob, dtype=np.float32)
        return arts, sorted(chunks), vecs
    finally:
        db.close()


@pytest.mark.slow
def test_ray_index_equals_local(tmp_path: Path, ray_local: object, real_embedder) -> None:
    from rag.scale.ray_ingest import RayPipeline

    docs = corpus(tmp_path / "docs")
    shutil.copy(SEEDS / "000_1511c0eeef884a91.txt", docs / "seed.txt")
    Index.build([docs], path=tmp_path / "local", embedder=real_embedder, progress=False)
    there = Index.open(tmp_path / "ray", embedder=real_embedder)
    report = there.add([docs], pipeline=RayPipeline(), progress=False)
    assert report.added == len(TOPICS) + 1 and not report.skipped
    a_here, c_here, v_here = dump(tmp_path / "local")
    a_ray, c_ray, v_ray = dump(tmp_path / "ray")
    assert a_ray == a_here
    assert c_ray == c_here and len(c_ray) > len(TOPICS)
    cos = [float(v_here[k] @ v_ray[k]) for k in v_here]
    assert min(cos) >= 0.9999, min(cos)
    hits = there.search("Which bridge opened to traffic?", k=3)
    assert hits[0].title == "New bridge opens to traffic"
    # Same again: nothing re-embedded (incremental by content hash).
    again = there.add([docs], pipeline=RayPipeline(), progress=False)
    assert (again.added, again.updated, again.unchanged, again.chunks_added) == (0, 0, 7, 0)


def test_ray_sync_update_and_bad_files(tmp_path: Path, ray_local: object) -> None:
    """Bad files are reported with path and reason and the rest is indexed; updates,
    duplicates and deletes behave as on the local path."""
    from rag.scale.ray_ingest import RayPipeline

    docs = corpus(tmp_path / "docs")
    for name in ("broken.jsonl", "binary.txt", "not_supported.pdf", "dup_a.txt", "dup_b.txt"):
        shutil.copy(NASTY / name, docs / name)
    fake = FakeEmbedder()
    local = Index.build([docs], path=tmp_path / "local", embedder=fake, progress=False)
    idx = Index.open(tmp_path / "ray", embedder=fake)
    r = idx.add([docs], pipeline=RayPipeline(), progress=False)
    assert r.skipped == local.last_report.skipped  # type: ignore[union-attr]
    said = "\n".join(f"{Path(s.path).name}: {s.reason}" for s in r.skipped)
    for expected in ("binary.txt: binary file", "broken.jsonl:2: line 2: invalid JSON",
                     "not_supported.pdf: unsupported file type", "dup_b.txt: duplicate of"):
        assert expected in said, said
    assert r.added == local.last_report.added > len(TOPICS)  # type: ignore[union-attr]
    assert dump(tmp_path / "ray")[:2] == dump(tmp_path / "local")[:2]
    # An edit, a deletion and a rename, with --sync.
    write(docs / "story_0.txt", STORY.format(day=3, title=TOPICS[0], body="Changed body."))
    (docs / "story_1.txt").unlink()
    os.replace(docs / "story_2.txt", docs / "renamed.txt")
    r2 = idx.add([docs], pipeline=RayPipeline(), sync=True, progress=False)
    l2 = local.add([docs], sync=True, progress=False)
    assert (r2.added, r2.updated, r2.removed, r2.unchanged) == \
        (l2.added, l2.updated, l2.removed, l2.unchanged)
    assert r2.updated == 1 and r2.removed >= 1
    assert dump(tmp_path / "ray")[:2] == dump(tmp_path / "local")[:2]


def test_ray_keeps_the_index_choice_of_sentence_vectors(tmp_path: Path, ray_local: object) -> None:
    """Without sentence vectors (the default) the actors embed only chunks; an index
    built with them gets them from Ray exactly as from the local path."""
    from rag.scale.ray_ingest import RayPipeline

    docs = corpus(tmp_path / "docs", 3)
    for on in (False, True):
        Index.build([docs], path=tmp_path / f"local{on}", embedder=FakeEmbedder(),
                    progress=False, sentences=on)
        idx = Index.open(tmp_path / f"ray{on}", embedder=FakeEmbedder(), sentences=on)
        r = idx.add([docs], pipeline=RayPipeline(), progress=False)
        assert r.added == 3
        here, there = dump(tmp_path / f"local{on}"), dump(tmp_path / f"ray{on}")
        assert there[:2] == here[:2]
        assert {c[-1] for c in there[1]} == {on}  # every chunk has sentences, or none has


def test_sharded_search_equals_one_index(tmp_path: Path) -> None:
    """4 exact shards and 1 exact index over the same chunks: the same top 10, and BM25
    scores bit for bit (corpus-wide statistics)."""
    from rag.index.derived import reshard
    from rag.index.shards import ShardedLexical, ShardedVectors

    docs = tmp_path / "docs"
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        write(docs / f"d{i}.txt", STORY.format(day=i % 27 + 1, title=f"{topic} ({i})",
                                               body=f"Report {i}: {topic.lower()}. " * (i % 5 + 1)))
    fake = FakeEmbedder()
    idx = Index.build([docs], path=tmp_path / "index", embedder=fake, kind="flat", progress=False)
    queries = ["harbour storm cranes", "rail strike talks", "bridge traffic",
               "heatwave schools", "nurse hospital wing report 7", "council flood defences"]
    one = {q: [(h.chunk_id, h.score) for h in idx.search(q, k=10)] for q in queries}
    single = idx._current().lexical
    reshard(idx, 4, kind="flat")
    sharded = Index.load(tmp_path / "index", embedder=fake)
    state = sharded._current()
    assert isinstance(state.vectors, ShardedVectors) and len(state.vectors.shards) == 4
    assert isinstance(state.lexical, ShardedLexical)
    for q in queries:
        assert np.array_equal(state.lexical.scores(q), single.scores(q)), q
        assert [(h.chunk_id, h.score) for h in sharded.search(q, k=10)] == one[q], q
    # A write keeps the index sharded, and old-or-new: the manifest lists every shard.
    write(docs / "new.txt", STORY.format(day=9, title="Ferry timetable changes", body="New."))
    sharded.add([docs], progress=False)
    again = Index.load(tmp_path / "index", embedder=fake)
    assert len(again._current().vectors.shards) == 4  # type: ignore[attr-defined]
    assert again.search("ferry timetable", k=1)[0].title == "Ferry timetable changes"


def test_answer_on_sharded_index(tmp_path: Path, fake: FakeEmbedder) -> None:
    from rag import answer
    from rag.index.derived import reshard

    idx = Index.build([corpus(tmp_path / "docs")], path=tmp_path / "index", embedder=fake,
                      kind="flat", progress=False)
    reshard(idx, 3, kind="flat")
    ans = answer("Which bridge opened to traffic?", Index.load(tmp_path / "index", embedder=fake))
    assert ans.citations and any("bridge" in c.title.lower() for c in ans.citations)


# -- kill -9 of a `rag index --ray local` driver --------------------------------------------
_DRIVER = """\
import sys
sys.path.insert(0, {tests!r})
import fakes, ray.cloudpickle
ray.cloudpickle.register_pickle_by_value(fakes)  # the workers have no tests/ folder
import rag.cli
sys.exit(rag.cli.main(sys.argv[1:], embedder=fakes.FakeEmbedder()))
"""


def _session_pids(sid: int) -> list[int]:
    """Processes in session `sid`: the killed driver's Ray (its GCS, raylet, workers and
    agents), which outlive it. Their command lines are retitled, their session is not."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
                pids.append(int(d.name))
    return pids


@pytest.mark.slow
# One point, mid-stream (Ray busy): the later points run the same writer code as the
# local path, which tests/test_faults.py kills at every one.
@pytest.mark.parametrize("point,state", [("embedding", "old")])
def test_kill_ray_driver(point: str, state: str, tmp_path: Path, ray_local: object) -> None:
    """kill -9 of `rag index --ray local` mid-write leaves the old or the new index; its Ray
    processes are cleaned up; the same command again finishes the job."""
    from rag.scale.ray_ingest import RayPipeline

    docs = corpus(tmp_path / "docs", 3)
    Index.build([docs], path=tmp_path / "index", embedder=FakeEmbedder(), progress=False)
    old = dump(tmp_path / "index")[:2]
    corpus(tmp_path / "docs")  # three more stories
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(tests=str(TESTS)))
    cmd = [sys.executable, str(script), "index", str(docs), "--index", str(tmp_path / "index"),
           "--ray", "local", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=child_env(RAG_FAULT_POINT=point, RAG_FAULT_WAIT="120"))
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 180
        said = []
        for line in proc.stderr:
            said.append(line)
            if line.strip() == f"RAG_FAULT_POINT reached: {point}" or time.monotonic() > deadline:
                break
        assert f"RAG_FAULT_POINT reached: {point}\n" in said, "".join(said[-20:])
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for _ in range(3):  # a worker may be forked while the first ones die
            for pid in _session_pids(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
    assert not _session_pids(proc.pid)
    idx = Index.load(tmp_path / "index", embedder=FakeEmbedder())
    after = dump(tmp_path / "index")[:2]
    if state == "old":
        assert after == old
    else:
        assert len(after[0]) == len(TOPICS) and len(after[1]) > len(old[1])
    assert idx.search("bridge traffic", k=1)  # loads (derived files rebuilt if needed)
    # Running it again (on the session's Ray) finishes the job: no duplicate, none missing.
    idx.add([docs], pipeline=RayPipeline(), progress=False)
    final = dump(tmp_path / "index")[:2]
    assert len(final[0]) == len(TOPICS) and len({c[:2] for c in final[1]}) == len(final[1])
    Index.build([docs], path=tmp_path / "fresh", embedder=FakeEmbedder(), progress=False)
    assert final == dump(tmp_path / "fresh")[:2]


def test_ray_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from rag.errors import InputError
    from rag.scale import ray_ingest

    real = builtins.__import__

    def no_ray(name: str, *a: object, **k: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r'pip install "\.\[scale\]"'):
        ray_ingest.import_ray()
