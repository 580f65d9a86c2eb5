"""The segmented BM25 index: scores equal bm25s's and a from-scratch build after any
sequence of updates, saves and loads; unchanged segments are linked, not rewritten."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rag.index import lexical
from rag.index.lexical import Lexical, tokenize

WORDS = ("kursk missile drone attack region governor border village power plant strike "
         "shelling 2 three intercepted civilians killed wounded bridge river oil depot "
         "the of and in on a").split()
QUERIES = ["drone attack on kursk", "power plant strike", "2 intercepted", "oil depot oil",
           "governor of the region", "nothing matches zzz", "the"]


def _texts(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def _by_id(lex: Lexical, query: str) -> dict[int, float]:
    scores = lex.scores(query)
    return {int(i): float(s) for i, s, a in zip(lex.ids, scores, lex.alive) if a}


def test_scores_match_bm25s() -> None:
    import bm25s

    texts = _texts(random.Random(1), 300)
    ids = np.arange(5, 305)
    lex = Lexical.build([(ids[:120], texts[:120]), (ids[120:], texts[120:])])
    ref = bm25s.BM25(k1=lexical.K1, b=lexical.B, method="lucene")
    ref.index(tokenize(texts), show_progress=False)
    for q in QUERIES:
        tokens = [t for t in tokenize([q])[0] if t in ref.vocab_dict]
        want = np.asarray(ref.get_scores(tokens)) if tokens else np.zeros(len(texts))
        np.testing.assert_allclose(lex.scores(q), want, rtol=1e-5, atol=1e-6)
    assert lex.scores("drone").max() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_updates_score_as_a_fresh_build(tmp_path, monkeypatch, seed: int) -> None:
    # Small limits so that both kinds of merge happen within a few updates.
    monkeypatch.setattr(lexical, "MAX_SEGMENTS", 3)
    rng = random.Random(seed)
    next_id = 1
    live: dict[int, str] = {}
    first = _texts(rng, 40)
    for t in first:
        live[next_id] = t
        next_id += 1
    lex = Lexical.build([(np.array(list(live)), list(live.values()))])
    merges = compactions = 0
    for step in range(25):
        gone = rng.sample(sorted(live), k=min(len(live), rng.randint(0, 8)))
        new = _texts(rng, rng.randint(0, 6))
        new_ids = np.arange(next_id, next_id + len(new))
        next_id += len(new)
        before = len(lex.segments)
        lex = lex.updated(new_ids, new, np.array(gone, dtype=np.int64))
        merges += len(lex.segments) < before + (1 if len(new) else 0)
        compactions += lex.dead == 0 and len(gone) > 0
        for g in gone:
            del live[g]
        live.update(zip(new_ids.tolist(), new))
        if step % 4 == 0:  # through the disk and back, as a new index version would be
            folder = tmp_path / f"v{step}"
            lex.save(folder)
            lex.moved_to(folder)
            lex = Lexical.load(folder)
        fresh = Lexical.build([(np.array(sorted(live), dtype=np.int64),
                                [live[i] for i in sorted(live)])])
        assert sorted(lex.live_ids.tolist()) == sorted(live)
        for q in QUERIES:
            got, want = _by_id(lex, q), _by_id(fresh, q)
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[i] for i in want], list(want.values()),
                                       rtol=1e-5, atol=1e-6, err_msg=f"step {step}: {q!r}")
    assert merges and compactions, "the test should exercise both kinds of merge"


def test_an_update_links_unchanged_segments(tmp_path) -> None:
    texts = _texts(random.Random(3), 50)
    lex = Lexical.build([(np.arange(1, 51), texts)])
    lex.save(tmp_path / "v1")
    lex.moved_to(tmp_path / "v1")
    after = lex.updated(np.array([51]), ["a new drone attack"], np.array([2]))
    after.save(tmp_path / "v2")
    base = lex.segments[0].name
    old, new = tmp_path / "v1" / f"{base}.tf.npy", tmp_path / "v2" / f"{base}.tf.npy"
    assert old.stat().st_ino == new.stat().st_ino  # the same file, not a copy
    assert len(after.segments) == 2
    loaded = Lexical.load(tmp_path / "v2")
    assert _by_id(loaded, "drone attack") == pytest.approx(_by_id(after, "drone attack"))
    assert 2 not in _by_id(loaded, "drone attack")


def test_new_ids_must_follow_the_indexed_ones() -> None:
    lex = Lexical.build([(np.array([10, 11]), ["a drone", "a missile"])])
    with pytest.raises(ValueError, match="above"):
        lex.updated(np.array([5]), ["late"], np.array([], dtype=np.int64))


def test_empty_index_and_removing_everything() -> None:
    empty = Lexical.build([])
    assert empty.scores("drone").shape == (0,)
    lex = Lexical.build([(np.array([1, 2]), ["a drone", "a missile"])])
    gone = lex.updated(np.array([], dtype=np.int64), [], np.array([1, 2]))
    assert gone.n_live == 0 and len(gone.ids) == 0
    again = gone.updated(np.array([3]), ["drone"], np.array([], dtype=np.int64))
    assert _by_id(again, "drone").keys() == {3}
