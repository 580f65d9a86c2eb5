"""The ONNX Runtime embedder: an exported copy of the real model, kept in the user's cache.

Exports are real (torch -> ONNX, ~10 s each on 2 cores); each test has its own cache
folder (RAG_CACHE_DIR) under tmp_path, so nothing leaks into ~/.cache.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEED_ID, SEEDS, child_env

from rag import Index, SentenceTransformerEmbedder
from rag.embed.export import PARITY_MIN_COSINE, exported, model_key
from rag.embed.onnx import INT8, OnnxEmbedder, run_file
from rag.errors import ModelMismatchError

pytestmark = pytest.mark.slow

TEXTS = [
    "How many missiles were intercepted?",
    "Karachev is a city in the Bryansk region.",
    (SEEDS / SEED_ID).read_text()[:3000],  # beyond 256 word pieces: cut like torch cuts it
    "x",
]


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model's folder, copied so a test may change it."""
    from rag.embed.embedder import resolve

    dest = tmp_path_factory.mktemp("model") / "minilm"
    shutil.copytree(resolve("all-MiniLM-L6-v2"), dest)
    return dest


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_onnx_vectors_match_torch(model_copy, cache, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    onnx = OnnxEmbedder(str(model_copy))
    got = onnx.embed(TEXTS)
    want = SentenceTransformerEmbedder(str(model_copy), bf16=False).embed(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384)
    assert float((got * want).sum(axis=1).min()) >= PARITY_MIN_COSINE
    # Token counts are the model's own (the chunker relies on them), not truncated.
    torch_model = SentenceTransformerEmbedder(str(model_copy))
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch_model.count_tokens(t) for t in TEXTS]
    assert onnx.count_tokens(TEXTS[2]) > onnx.max_tokens == 256
    # Tokenized once: the ids kept by count_tokens give the same vectors as a fresh encode.
    again = onnx.embed(TEXTS)
    assert np.allclose(again, got, atol=1e-6)
    meta = json.loads((cache / "onnx" / model_key(model_copy) / "export.json").read_text())
    assert meta["min_cosine"] >= PARITY_MIN_COSINE


def test_bulk_work_on_parallel_sessions_gives_the_same_vectors(model_copy, cache, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    from rag.embed.onnx import BULK_MIN

    # Enough texts of mixed lengths for a bulk call of several batches, in no length order.
    texts = [f"{t} ({n})" for n in range(BULK_MIN // len(TEXTS) + 2) for t in TEXTS]
    assert len(texts) >= BULK_MIN
    two = OnnxEmbedder(str(model_copy), threads=2, bf16=False)
    one = OnnxEmbedder(str(model_copy), threads=1, bf16=False)
    got, want = two.embed(texts), one.embed(texts)
    assert len(two._bulk) == 2 and len(one._bulk) == 1  # two one-thread sessions vs one
    assert np.allclose(got, want, atol=1e-5)  # same rows, in the caller's order
    # A small call (a query) still runs on the one query session.
    assert np.allclose(two.embed(texts[:3]), want[:3], atol=1e-5)


def test_bulk_work_on_torch_bf16_gives_the_fp32_vectors(model_copy, cache, monkeypatch,
                                                          tmp_path):
    """Where the CPU has bf16, bulk work may run on torch with bf16 autocast: the same
    model's vectors (cosine >= 0.9999 to ONNX Runtime's fp32), rows in the caller's order;
    a query stays on ONNX Runtime. When not forced, the first bulk calls are timed both ways
    and the faster kept; the vector cache files them under the precision that made them."""
    from rag.embed.bf16 import torch_available
    from rag.embed.cache import precisions
    from rag.embed.onnx import BULK_MIN
    from rag.embed.runtime import BF16_TRIALS, cpu_has_bf16

    if not (cpu_has_bf16() and torch_available()):
        pytest.skip("this CPU has no bf16 (or torch is not installed): bulk work stays on ONNX")
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    texts = [f"{t} ({n})" for n in range(BULK_MIN // len(TEXTS) + 2) for t in TEXTS]
    fp32 = OnnxEmbedder(str(model_copy), threads=2, bf16=False).embed(texts)
    forced = OnnxEmbedder(str(model_copy), threads=2, bf16=True)
    got = forced.embed(texts)
    assert float((got * fp32).sum(axis=1).min()) >= PARITY_MIN_COSINE
    assert forced._bulk is None and forced._torch is not None  # no ONNX bulk session opened
    # Bulk work on torch hands the idle query session back (memory); a small call then
    # runs on torch too instead of opening it again beside torch.
    assert forced._session is None
    mid = forced.embed(texts[:2])
    assert float((mid * fp32[:2]).sum(axis=1).min()) >= PARITY_MIN_COSINE
    assert forced._session is None
    assert precisions(forced, len(texts)) == ("bf16", "fp32")
    # A build hands the bulk-only model back before writing its search files (its peak
    # memory): queries are on ONNX Runtime fp32 again; the next bulk call loads torch
    # again and still runs bf16.
    from rag import Index

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The river froze in January. Boats stayed in port.")
    Index.build([tmp_path / "docs"], path=tmp_path / "index", embedder=forced, progress=False)
    assert forced._torch is None and forced._bulk is None
    assert np.allclose(forced.embed(texts[:2]), fp32[:2], atol=1e-5)  # a query: ONNX fp32
    assert forced._session is not None
    again = forced.embed(texts)
    assert forced._torch is not None and np.allclose(again, got, atol=1e-6)
    measured = OnnxEmbedder(str(model_copy), threads=1)
    measured.bf16_after = 2 * len(texts)  # a small build never loads torch: two calls here
    for _ in range(2):
        measured.embed(texts)
    assert measured._torch is None and not measured.trials
    for _ in range(BF16_TRIALS + 1):
        measured.embed(texts)
    assert [mode for mode, _ in measured.trials] == [True, False] * (BF16_TRIALS // 2)
    fast_bf16, fast_fp32 = measured.trial_best().values()
    assert measured.bulk_bf16() == (fast_bf16 < fast_fp32)
    # int8 is another model: never bf16, cached as int8.
    int8 = OnnxEmbedder(str(model_copy) + INT8)
    assert not int8.bulk_bf16() and precisions(int8, len(texts)) == ("int8",)


def test_length_sorted_batches_give_each_text_its_own_vector(model_copy, cache, monkeypatch):
    """A bulk call sorts its texts by length into batches (less padding) and puts the rows
    back in the caller's order: each row is the vector the text gets embedded alone."""
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    from rag.embed.onnx import BATCH, BULK_MIN

    # Long and short texts interleaved, so sorting really reorders them across batches.
    texts = [TEXTS[n % len(TEXTS)][: 40 + 97 * n % 2500] + f" ({n})"
             for n in range(max(BULK_MIN, 3 * BATCH))]
    onnx = OnnxEmbedder(str(model_copy), threads=1, bf16=False)
    together = onnx.embed(texts)
    alone = np.concatenate([onnx.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_changed_model_is_exported_again(model_copy, cache, monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    before = exported(model_copy, "copy", run=run_file)  # made by the parity test, or now
    changed = tmp_path / "changed"
    shutil.copytree(model_copy, changed)
    key = model_key(changed)
    # New weights: every word embedding scaled, so its vectors really differ.
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(changed / "model.safetensors"))
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = weights[name] * np.float32(0.5)
    save_file(weights, str(changed / "model.safetensors"), metadata={"format": "pt"})
    assert model_key(changed) != key
    after = exported(changed, "changed", run=run_file)
    assert after != before and after.exists()
    new = OnnxEmbedder(str(changed)).embed(TEXTS[:2])
    old = OnnxEmbedder(str(model_copy)).embed(TEXTS[:2])
    torch_new = SentenceTransformerEmbedder(str(changed), bf16=False).embed(TEXTS[:2])
    assert float((new * torch_new).sum(axis=1).min()) >= PARITY_MIN_COSINE
    assert float((new * old).sum(axis=1).max()) < 0.999


def test_an_int8_index_refuses_fp32_queries(model_copy, cache, monkeypatch, tmp_path):
    from rag.embed.embedder import embedder_for

    monkeypatch.setenv("RAG_CACHE_DIR", str(cache))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEEDS / SEED_ID, corpus / SEED_ID)
    int8 = embedder_for(str(model_copy) + INT8)
    assert isinstance(int8, OnnxEmbedder) and int8.name.endswith(INT8)
    idx = Index.build([corpus], path=tmp_path / "index", embedder=int8, progress=False)
    assert idx.search("How many ATACMS missiles were shot down?", k=1)
    with pytest.raises(ModelMismatchError, match="rebuild"):
        Index.load(tmp_path / "index", embedder=OnnxEmbedder(str(model_copy)))
    # Loaded without an embedder, the index picks the int8 model it records.
    again = Index.load(tmp_path / "index")
    assert again.embedder.name == int8.name


def test_a_killed_export_leaves_no_half_file(model_copy, tmp_path):
    cache = tmp_path / "cache"
    code = ("import sys; from pathlib import Path; from rag.embed.export import exported; "
            "from rag.embed.onnx import run_file; "
            "exported(Path(sys.argv[1]), 'copy', run=run_file)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(model_copy)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_CACHE_DIR=str(cache),
                                          RAG_FAULT_POINT="model_export", RAG_FAULT_WAIT="120"))
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip() == "RAG_FAULT_POINT reached: model_export":
                break
        else:
            pytest.fail("the export never reached its publish point")
        folder = cache / "onnx" / model_key(model_copy)
        # The whole file is written (and checked) under a temporary name; the final name
        # does not exist yet, so no reader can load half a model.
        assert not (folder / "model.onnx").exists()
        assert [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (folder / "model.onnx").exists()
    env = {"RAG_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code + "; print('ok')", str(model_copy)],
                         cwd=ROOT, capture_output=True, text=True, env=child_env(**env))
    assert out.returncode == 0, out.stderr
    assert OnnxEmbedder.from_file(folder / "model.onnx", model_copy).embed(["ok"]).shape == (1, 384)
