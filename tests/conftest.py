from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_ID = "000_1511c0eeef884a91.txt"
SEED_TITLE = "Russia Claims Two More ATACMS Missile Strikes by Ukraine, Threatens Retaliation"
SHARED = ROOT.parent / "shared"

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import FakeEmbedder  # noqa: E402


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("RAG_", "OPENAI_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


_CLI_DRIVER = """\
import sys
sys.path.insert(0, {tests!r})
from fakes import FakeEmbedder
import rag.cli
sys.exit(rag.cli.main(sys.argv[1:], embedder=FakeEmbedder()))  # the boundary: no model here
"""


@pytest.fixture
def driver(tmp_path: Path) -> list[str]:
    """A command running the real `rag` CLI in a subprocess, with the fake embedder."""
    script = tmp_path / "driver.py"
    script.write_text(_CLI_DRIVER.format(tests=str(Path(__file__).parent)))
    return [sys.executable, str(script)]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without RAG_ settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def real_embedder():
    from rag import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, real_embedder):
    """The seed article indexed with the real model (built once per session)."""
    from rag import Index

    corpus = tmp_path_factory.mktemp("seedcorpus")
    shutil.copy(SEEDS / SEED_ID, corpus / SEED_ID)
    path = tmp_path_factory.mktemp("seedindex") / "index"
    return Index.build([corpus], path=path, embedder=real_embedder, progress=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
