"""The embedder's own logic (bf16 choice), with the torch model replaced at the boundary."""

import pytest

from rag import SentenceTransformerEmbedder


class _TimedModel:
    """The boundary: a stand-in for the torch model whose speed depends on bf16 autocast."""

    def __init__(self, bf16_seconds: float, fp32_seconds: float) -> None:
        self.seconds = {True: bf16_seconds, False: fp32_seconds}
        self.modes: list[bool] = []

    def encode(self, texts, **kwargs):
        import time

        import torch

        mode = torch.is_autocast_enabled("cpu")
        self.modes.append(mode)
        time.sleep(self.seconds[mode])
        return torch.ones((len(texts), 4))


@pytest.mark.parametrize("bf16_faster", [True, False])
def test_bulk_embedding_measures_bf16_and_keeps_the_faster(monkeypatch, bf16_faster):
    from rag.embed import runtime
    from rag.embed.embedder import BF16_MIN_BATCH, BF16_TRIALS

    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    emb = SentenceTransformerEmbedder()
    emb._model = _TimedModel(0.01 if bf16_faster else 0.05, 0.05 if bf16_faster else 0.01)
    bulk = ["a text of some length"] * BF16_MIN_BATCH
    for _ in range(BF16_TRIALS + 3):
        emb.embed(bulk)
    emb.embed(["one query"])  # a handful of texts: never bf16
    modes = emb._model.modes
    assert modes[:BF16_TRIALS] == [True, False] * (BF16_TRIALS // 2)
    assert modes[BF16_TRIALS:-1] == [bf16_faster] * 3 and modes[-1] is False
    forced = SentenceTransformerEmbedder(bf16=not bf16_faster)
    forced._model = _TimedModel(0.0, 0.0)
    for _ in range(BF16_TRIALS + 1):
        forced.embed(bulk)
    assert forced._model.modes == [not bf16_faster] * (BF16_TRIALS + 1)


def test_idle_cores_are_read_from_the_machine() -> None:
    """The thread choice watches /proc/stat: a number of cores between none and all."""
    import os

    from rag.embed.runtime import _idle_cores, available_threads

    idle = _idle_cores(0.05)
    assert idle is not None and 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9
    assert 1 <= available_threads() <= len(os.sched_getaffinity(0))
