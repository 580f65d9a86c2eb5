"""Training the reader on a tiny slice: the loss falls, and a killed run resumes exactly."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED, child_env

SQUAD = SHARED / "datasets" / "squad" / "train-v1.1.jsonl"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SQUAD.is_file(), reason=f"needs {SQUAD} (../shared)")]


def tiny_data(folder: Path, titles: int = 6, per_title: int = 6) -> Path:
    """The first few questions of the first few SQuAD 1.1 articles."""
    rows: dict[str, list[str]] = {}
    with SQUAD.open(encoding="utf-8") as fh:
        for line in fh:
            title = json.loads(line)["title"]
            if title not in rows and len(rows) == titles:
                break
            if len(rows.setdefault(title, [])) < per_title:
                rows[title].append(line)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-v1.1.jsonl").write_text("".join(x for v in rows.values() for x in v))
    return folder


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    import torch

    from rag.training.negatives import load_squad
    from rag.training.trainer import (
        TrainConfig,
        batch_loss,
        build_model,
        default_base,
        load_tokenizer,
    )

    data = tiny_data(tmp_path / "data")
    examples = load_squad(data / "train-v1.1.jsonl")[:8]
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), bf16=False)
    torch.manual_seed(0)
    model = build_model(default_base())
    tokenizer = load_tokenizer(default_base())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            value = float(batch_loss(model, tokenizer, examples, cfg, random.Random(0)))
        model.train()
        return value

    before = loss_now()
    for step in range(6):
        loss = batch_loss(model, tokenizer, examples, cfg, random.Random(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_now()
    assert after < before - 0.5, (before, after)


def _train(data: Path, out: Path, *extra: str, **env: str) -> list[str]:
    return [sys.executable, "-m", "rag", "train-reader", "--data", str(data), "--out", str(out),
            "--examples", "24", "--batch", "4", "--checkpoint-steps", "2", "--holdout", "4",
            "--holdout-titles", "2", "--threads", "1", *extra]


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    import torch

    data = tiny_data(tmp_path / "data")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(_train(data, whole), capture_output=True, text=True, timeout=600,
                          env=child_env())
    assert done.returncode == 0, done.stderr[-2000:]
    # Killed (-9) right after its first checkpoint, then resumed to the end.
    proc = subprocess.Popen(_train(data, killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env=child_env(RAG_FAULT_POINT="reader_checkpoint", RAG_FAULT_WAIT="300"))
    assert proc.stderr is not None
    for line in proc.stderr:
        if "RAG_FAULT_POINT reached: reader_checkpoint" in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -9
    first = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert first["step"] == 2
    again = subprocess.run(_train(data, killed, "--resume"), capture_output=True, text=True,
                           timeout=600, env=child_env())
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed at step 2" in (killed / "train.log").read_text()
    a = torch.load(whole / "checkpoint.pt", weights_only=False)
    b = torch.load(killed / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    # A second run into the same folder without --resume is refused, not overwritten.
    refused = subprocess.run(_train(data, whole), capture_output=True, text=True, timeout=120,
                             env=child_env())
    assert refused.returncode == 1 and "--resume" in refused.stderr


def test_training_continues_from_the_shipped_reader(tmp_path: Path) -> None:
    """`--init` takes an exported reader: its int8 weights, dequantized, read as it reads."""
    import numpy as np
    import torch

    from rag.answering.reader import MODEL_DIR, Reader
    from rag.answering.windows import make_windows, pad
    from rag.training.trainer import build_model, default_base, load_tokenizer

    data = tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    done = subprocess.run(_train(data, run, "--init", str(MODEL_DIR), "--examples", "4"),
                          env=child_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "starting from the reader" in done.stdout
    model = build_model(default_base(), attn="eager").eval()
    model.load_state_dict(torch.load(run / "init-from-reader.pt", weights_only=False)["model"])
    reader = Reader.load()
    question, passage = "Who wrote the report?", ("The report was written by Ann Lee in 2021 "
                                                  "for the council, which met in May in Oslo.")
    feed = pad(make_windows(load_tokenizer(default_base()), question, [passage], 192, 64))
    with torch.no_grad():
        start, end = (t.numpy() for t in model(*(torch.from_numpy(feed[k]) for k in
                                                 ("input_ids", "attention_mask", "token_type_ids"))))
    want_start, want_end = reader.session.run(["start_logits", "end_logits"], feed)
    mask = feed["attention_mask"].astype(bool)
    # int8 against its own dequantized weights: close, not equal (activations are quantized too)
    assert np.abs(start - want_start)[mask].max() < 1.5
    assert np.abs(end - want_end)[mask].max() < 1.5
    assert start.argmax() == want_start.argmax() and end.argmax() == want_end.argmax()
    fresh = build_model(default_base(), attn="eager").eval()  # the base with an untrained head
    with torch.no_grad():
        untrained = fresh(*(torch.from_numpy(feed[k]) for k in
                            ("input_ids", "attention_mask", "token_type_ids")))[0].numpy()
    assert np.abs(untrained - want_start)[mask].max() > 3  # the test can tell the two apart
