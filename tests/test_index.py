"""Index behaviour with the deterministic fake embedder (fast; the real model is elsewhere)."""

import shutil

import pytest
from conftest import SEED_ID, SEEDS, write
from fakes import FakeEmbedder

from rag import Index
from rag.errors import IndexNotFoundError, InputError, ModelMismatchError
from rag.ingest.chunking import ChunkSpec
from rag.options import Filters

DIPLOMAT = """Published 10:00 GMT, March 3rd 2025
Norway Expels Ambassador Over Fishing Dispute
The government gave the ambassador seven days to leave.
Oslo: Norway ordered the ambassador of Freedonia to leave within seven days after a dispute over cod quotas in the Barents Sea.
The foreign minister said the decision was final.
"""

BRIDGE = """Published 09:00 CET, January 5th 2023
Zorbex Bridge Reopens
The Zorbex bridge in Lindqvist reopened after repairs costing 4.2 million euros.
Engineers replaced the cables over eight months.
"""


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    shutil.copy(SEEDS / SEED_ID, write(root / "x", "").parent / SEED_ID)
    (root / "x").unlink()
    write(root / "norway.txt", DIPLOMAT)
    write(root / "sub" / "bridge.txt", BRIDGE)
    return root


def build(corpus, tmp_path, **kw):
    return Index.build([corpus], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False,
                       **kw)


def test_build_and_search_return_exact_passages(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    r = idx.last_report
    assert (r.added, r.updated, r.removed, r.skipped) == (3, 0, 0, ())
    hits = idx.search("ambassador cod quotas Barents Sea", k=3)
    assert hits[0].article_id == "norway.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    for h in hits:
        assert idx.article(h.article_id).text[h.start:h.end] == h.text
    assert hits[0].published == "2025-03-03T10:00:00+00:00"


def test_reindexing_adds_nothing(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    chunks = idx.stats().chunks
    again = idx.add([corpus], progress=False)
    assert (again.added, again.updated, again.unchanged, again.chunks_added) == (0, 0, 3, 0)
    assert idx.stats().chunks == chunks
    assert len(idx.articles()) == 3


def test_changed_article_is_replaced_not_duplicated(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    before = {a.id: a.chunks for a in idx.articles()}
    write(corpus / "norway.txt", DIPLOMAT.replace("seven days", "ten days"))
    r = idx.add([corpus], progress=False)
    assert (r.added, r.updated, r.unchanged) == (0, 1, 2)
    after = {a.id: a.chunks for a in idx.articles()}
    assert after == before
    hit = idx.search("ambassador days to leave", k=1)[0]
    assert "ten days" in idx.article("norway.txt").text
    assert "seven days" not in hit.text


def test_duplicate_content_under_another_name_is_skipped(corpus, tmp_path):
    write(corpus / "copy-of-norway.txt", DIPLOMAT)
    idx = build(corpus, tmp_path)
    assert len(idx.articles()) == 3
    reasons = [s.reason for s in idx.last_report.skipped]
    assert any("duplicate of" in r for r in reasons)
    assert idx.last_report.status == "partial"


def test_sync_removes_deleted_files_and_handles_renames(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    (corpus / "sub" / "bridge.txt").unlink()
    (corpus / "norway.txt").rename(corpus / "norway-renamed.txt")
    plain = idx.add([corpus], progress=False)
    # Without --sync a deleted file's article stays; a renamed file is re-keyed in place:
    # not doubled, not embedded again (reported as moved).
    assert {a.id for a in idx.articles()} == {SEED_ID, "norway-renamed.txt", "sub/bridge.txt"}
    assert (plain.added, plain.removed, plain.moved, plain.chunks_added) == (0, 0, 1, 0)
    r = idx.add([corpus], sync=True, progress=False)
    assert {a.id for a in idx.articles()} == {SEED_ID, "norway-renamed.txt"}
    assert r.removed == 1
    assert idx.search("Zorbex bridge Lindqvist", k=3)[0].article_id != "sub/bridge.txt"


def test_remove_by_id(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    assert idx.remove(["norway.txt", "no-such-id"]) == 1
    assert "norway.txt" not in {a.id for a in idx.articles()}
    assert all(h.article_id != "norway.txt" for h in idx.search("ambassador Freedonia", k=5))


def test_save_load_round_trip_gives_same_hits(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    queries = ["ambassador", "missiles intercepted", "bridge repairs cables"]
    before = [[(h.chunk_id, round(h.score, 6)) for h in idx.search(q, k=4)] for q in queries]
    idx.close()
    again = Index.load(tmp_path / "idx", embedder=FakeEmbedder())
    after = [[(h.chunk_id, round(h.score, 6)) for h in again.search(q, k=4)] for q in queries]
    assert before == after


def test_two_builds_of_one_folder_agree(corpus, tmp_path):
    a = Index.build([corpus], path=tmp_path / "a", embedder=FakeEmbedder(), progress=False)
    b = Index.build([corpus], path=tmp_path / "b", embedder=FakeEmbedder(), progress=False)
    for q in ["ambassador", "ammunition supply location"]:
        assert [(h.article_id, h.start, h.end) for h in a.search(q, k=5)] == \
               [(h.article_id, h.start, h.end) for h in b.search(q, k=5)]


def test_missing_index_and_model_mismatch_say_what_to_do(corpus, tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag index"):
        Index.load(tmp_path / "nothing-here")
    build(corpus, tmp_path)
    with pytest.raises(ModelMismatchError, match="rebuild"):
        Index.load(tmp_path / "idx", embedder=FakeEmbedder(dim=32))
    other = FakeEmbedder()
    other.name = "another/model"
    with pytest.raises(ModelMismatchError, match="test/fake-hash-embedder"):
        Index.load(tmp_path / "idx", embedder=other)


def test_filters_by_date_and_source(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    hits = idx.search("bridge ambassador missiles", k=10, filters=Filters(published_after="2025-01-01"))
    assert {h.article_id for h in hits} == {"norway.txt"}
    hits = idx.search("bridge ambassador missiles", k=10, filters=Filters(published_before="2023-12-31"))
    assert {h.article_id for h in hits} == {"sub/bridge.txt"}
    hits = idx.search("bridge", k=10, filters=Filters(published_before="2024-11-26"))
    assert SEED_ID in {h.article_id for h in hits}  # the whole day counts
    assert idx.search("bridge", k=10, filters=Filters(sources=("nobody",))) == []


def test_bad_queries_get_clear_errors(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    with pytest.raises(InputError):
        idx.search("   ")
    with pytest.raises(InputError):
        idx.search("x", k=0)
    assert isinstance(idx.search("?" * 10_000, k=3), list)


def test_interrupted_write_is_repaired_from_the_store(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    want = [(h.chunk_id) for h in idx.search("ambassador", k=3)]
    idx.close()
    # Simulate a crash after the store commit but before the derived files were written.
    for f in (tmp_path / "idx").iterdir():
        if f.name.startswith(("vectors-", "bm25-")):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    again = Index.load(tmp_path / "idx", embedder=FakeEmbedder())
    assert [h.chunk_id for h in again.search("ambassador", k=3)] == want
    assert any(f.name.startswith("vectors-") for f in (tmp_path / "idx").iterdir())


def _article(n: int) -> str:
    return (f"Published 09:00 CET, January {n % 28 + 1}th 2023\nCouncil Report {n}\n"
            f"The council of town {n} approved budget item {n * 7} for roads and schools.\n"
            f"Residents of town {n} asked about ferry number {n * 3}.\n")


def test_auto_index_moves_from_exact_to_ivf_as_it_grows(tmp_path, monkeypatch):
    import rag.index.vectors

    monkeypatch.setattr(rag.index.vectors, "AUTO_IVF_AT", 60)
    root = tmp_path / "c"
    for n in range(20):
        write(root / f"a{n}.txt", _article(n))
    idx = Index.build([root], path=tmp_path / "idx", embedder=FakeEmbedder(), progress=False)
    assert idx.stats().kind == "flat"
    for n in range(20, 90):
        write(root / f"a{n}.txt", _article(n))
    idx.add([root], progress=False)
    assert idx.stats().kind == "ivf"
    assert idx.search("ferry number 267", k=1)[0].article_id == "a89.txt"
    again = Index.load(tmp_path / "idx", embedder=FakeEmbedder())
    assert again.stats().kind == "ivf"
    # An explicit choice is kept however large the index grows.
    flat = Index.build([root], path=tmp_path / "flat", embedder=FakeEmbedder(), kind="flat",
                       progress=False)
    write(root / "a90.txt", _article(90))
    flat.add([root], progress=False)
    assert Index.load(tmp_path / "flat", embedder=FakeEmbedder()).stats().kind == "flat"


def test_updates_keep_bm25_incremental_and_exact(corpus, tmp_path):
    idx = build(corpus, tmp_path)
    before = {p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("bm25-")}
    (base,) = before
    seg = next((tmp_path / "idx" / base).glob("*.tf.npy"))
    inode = seg.stat().st_ino
    write(corpus / "extra.txt", BRIDGE.replace("Zorbex", "Quillon").replace("4.2", "9.9"))
    (corpus / "norway.txt").unlink()
    idx.add([corpus], sync=True, progress=False)
    (now,) = {p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("bm25-")}
    assert now != base
    assert (tmp_path / "idx" / now / seg.name).stat().st_ino == inode  # linked, not rewritten
    fresh = Index.build([corpus], path=tmp_path / "fresh", embedder=FakeEmbedder(),
                        progress=False)
    for q in ("Quillon bridge 9.9 million", "ambassador cod", "Kursk governor"):
        got = [(h.article_id, h.start, round(h.lexical, 4)) for h in idx.search(q, k=3,
                                                                               mode="lexical")]
        want = [(h.article_id, h.start, round(h.lexical, 4)) for h in fresh.search(q, k=3,
                                                                                 mode="lexical")]
        assert got == want, q
    assert all(h.article_id != "norway.txt" for h in idx.search("ambassador cod", k=5))


def test_search_returns_k_disjoint_passages_when_the_article_has_room(tmp_path):
    # One long article whose every paragraph matches: the best chunks sit side by side and
    # fold together when widened, yet k distinct passages exist and must be returned.
    paras = [f"Paragraph {i}: the harbour ferry timetable changed again, said the port office."
             for i in range(120)]
    write(tmp_path / "c" / "ferry.txt", "Ferry Timetables\n" + "\n".join(paras) + "\n")
    idx = Index.build([tmp_path / "c"], path=tmp_path / "idx", embedder=FakeEmbedder(),
                      progress=False, chunking=ChunkSpec(48, 8))
    text = idx.article("ferry.txt").text
    queries = ["harbour ferry timetable port office", "Paragraph 7", "changed again 42 61 99"]
    for q, k in ((q, k) for q in queries for k in (1, 3, 5, 8, 13)):
        hits = idx.search(q, k=k)
        # Adjacent matches fold into passages of up to 1,600 characters: ~6 fit in this article.
        assert len(hits) == k if k <= 5 else 5 <= len(hits) <= k
        spans = sorted((h.start, h.end) for h in hits)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
        assert all(text[h.start:h.end] == h.text for h in hits)


def test_progress_reaches_the_end_only_when_everything_is_embedded(tmp_path):
    class Counting(FakeEmbedder):
        embedded = 0

        def embed(self, texts):
            Counting.embedded += len(texts)
            return super().embed(texts)

    for i in range(30):  # enough chunks for several embedding batches
        body = " ".join(f"Sentence {j} of report {i} on the grain harvest." for j in range(60))
        write(tmp_path / "c" / f"r{i:02}.txt", f"Harvest Report {i}\n{body}\n")
    write(tmp_path / "c" / "empty.txt", "")
    seen = []
    idx = Index.build([tmp_path / "c"], path=tmp_path / "idx", embedder=Counting(),
                      progress=lambda done, total, name: seen.append((done, total,
                                                                     Counting.embedded)))
    assert [d for d, _, _ in seen] == list(range(1, 32)) and {t for _, t, _ in seen} == {31}
    # 100% means every chunk is embedded (and every sentence, where the index stores them).
    sentences = sum(len(r[0]) // 8 for r in idx.store.db.execute("SELECT spans FROM sentences"))
    assert seen[-1][2] == idx.stats().chunks + sentences
