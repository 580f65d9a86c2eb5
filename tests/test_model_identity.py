"""Which model an index belongs to (issue 27.6, 27.7): `rag stats` loads no model; the
index records a fingerprint of the model's files and compares that, not the name or path.

Real model folders (the packaged all-MiniLM-L6-v2 and copies of it) and the real ONNX
embedder object; nothing is embedded, so nothing is exported or loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, write
from fakes import FakeEmbedder

from rag.embed.embedder import DEFAULT_MODEL, embedder_for, resolve
from rag.errors import ModelMismatchError
from rag.index.facade import Index

PACKAGED = Path(resolve(DEFAULT_MODEL))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))  # fingerprints kept here


STATS = """\
import sys
import rag.cli
code = rag.cli.main(["stats", "--index", sys.argv[1]])
heavy = [m for m in ("onnxruntime", "torch", "sentence_transformers", "tokenizers")
         if m in sys.modules]
print("loaded:", heavy)
sys.exit(code)
"""


def test_stats_loads_no_model_even_when_its_folder_is_gone(tmp_path: Path) -> None:
    model = tmp_path / "models" / "minilm"
    named = FakeEmbedder()  # the boundary: the index records this folder as its model
    named.name = str(model)
    write(tmp_path / "c" / "a.txt", "Harbour reopens\n\nFerries returned on Monday.")
    Index.build([tmp_path / "c"], path=tmp_path / "idx", embedder=named, progress=False).close()
    assert not model.exists()  # moved away (here: never there)
    script = tmp_path / "stats.py"
    script.write_text(STATS)
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "idx")], capture_output=True,
                       text=True, env=child_env(RAG_CACHE_DIR=str(tmp_path / "cache")),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 articles, 1 chunks") and f"model {model}" in r.stdout
    assert "loaded: []" in r.stdout
    idx = Index.load(tmp_path / "idx")  # a library reader: the model only when needed
    assert idx.stats().articles == 1 and idx.articles()[0].id == "a.txt"
    idx.close()


def test_the_packaged_model_named_by_its_own_folder_is_the_same_model(tmp_path: Path) -> None:
    Index.open(tmp_path / "idx", embedder=embedder_for()).close()
    by_folder = Index.load(tmp_path / "idx", embedder=embedder_for(str(PACKAGED)))
    assert by_folder.model == DEFAULT_MODEL
    by_folder.close()
    with pytest.raises(ModelMismatchError, match="rebuild"):
        Index.load(tmp_path / "idx", embedder=embedder_for(DEFAULT_MODEL + "+int8"))


def test_new_weights_at_the_same_path_are_noticed(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(PACKAGED, model)
    Index.open(tmp_path / "idx", embedder=embedder_for(str(model))).close()
    Index.load(tmp_path / "idx", embedder=embedder_for(str(model))).close()  # unchanged: fine
    weights = model / "model.safetensors"
    st = weights.stat()
    with open(weights, "r+b") as f:  # other weights: same size, same modification time
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ModelMismatchError, match="changed since the index"):
        Index.load(tmp_path / "idx", embedder=embedder_for(str(model)))
    lazy = Index.load(tmp_path / "idx")  # opened without a model: noticed on first use
    assert lazy.stats().articles == 0
    with pytest.raises(ModelMismatchError, match="changed since the index"):
        lazy.search("harbour")
    lazy.close()


def test_the_manifest_records_the_fingerprint_and_it_is_what_is_compared(tmp_path: Path) -> None:
    mine = FakeEmbedder()
    mine.fingerprint = "sha256:0123"  # type: ignore[attr-defined]  # an embedder's own
    write(tmp_path / "c" / "a.txt", "Harbour reopens\n\nFerries returned on Monday.")
    Index.build([tmp_path / "c"], path=tmp_path / "idx", embedder=mine, progress=False).close()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["model_fingerprint"] == "sha256:0123"
    renamed = FakeEmbedder()
    renamed.name, renamed.fingerprint = "elsewhere/same-model", "sha256:0123"  # type: ignore[attr-defined]
    Index.load(tmp_path / "idx", embedder=renamed).close()
    other = FakeEmbedder()
    other.fingerprint = "sha256:4567"  # type: ignore[attr-defined]
    with pytest.raises(ModelMismatchError):
        Index.load(tmp_path / "idx", embedder=other)


def test_an_index_without_a_fingerprint_still_loads(tmp_path: Path) -> None:
    Index.open(tmp_path / "idx", embedder=embedder_for()).close()
    db = sqlite3.connect(tmp_path / "idx" / "store.sqlite")
    with db:  # as written before fingerprints were recorded
        db.execute("DELETE FROM meta WHERE key='fingerprint'")
    db.close()
    for embedder in (None, embedder_for(), embedder_for(str(PACKAGED))):
        idx = Index.load(tmp_path / "idx", embedder=embedder)
        assert idx.fingerprint is None and idx.embedder.name in (DEFAULT_MODEL, str(PACKAGED))
        idx.close()
    with pytest.raises(ModelMismatchError):
        Index.load(tmp_path / "idx", embedder=FakeEmbedder())
