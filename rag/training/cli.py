"""`rag train-reader`: train, resume, choose the threshold on held-out train, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.errors import InputError, RagError
from rag.training.negatives import (
    HOLDOUT_TITLES,
    MIX,
    load_squad,
    parse_mix,
    split_holdout,
    training_stream,
)

THRESHOLD_EXAMPLES = 2000  # held-out train questions (with their negatives) for the threshold
# The reader's own threshold answers "does this passage answer the question?" for a passage
# given (the closed setting), so it is chosen on held-out answerable questions and, as many,
# negatives made from the question's own paragraph (these kinds, in MIX's proportions among
# themselves). Negatives from other paragraphs or articles are the open setting's, where
# `answer()` refuses by its own line (rag.answering.extractive, chosen on news-dev tune).
# On the whole MIX (stage 3) the F1-best threshold was 0.95, on this set 2.89: the easy
# other-article negatives had pulled it down (measured 2026-12-07 on the stage-3 reader).
CLOSED_KINDS = ("edit", "swap", "minus_sentence")


def threshold_mix() -> dict[str, float]:
    """Half answerable, half the closed setting's negatives, in MIX's proportions.

    >>> round(sum(threshold_mix().values()), 6), threshold_mix()["answer"]
    (1.0, 0.5)
    """
    same = {k: MIX[k] for k in CLOSED_KINDS}
    total = sum(same.values())
    return {"answer": 0.5, **{k: 0.5 * v / total for k, v in same.items()}}


def choose_threshold(model_dir: str | Path, data: str | Path, limit: int = 0,
                     holdout_titles: int = HOLDOUT_TITLES) -> tuple[float, dict[str, object]]:
    """The no-answer threshold that maximises F1 on held-out train articles (their questions
    and the closed setting's negatives, `threshold_mix`), never on dev."""
    from rag.answering.reader import Reader
    from rag.eval.reader_bench import Row, best_threshold, summarize

    questions = load_squad(Path(data) / "train-v1.1.jsonl")
    if limit:
        questions = questions[:limit]
    _, held = split_holdout(questions, holdout_titles)
    # A seed of its own: the checkpoints' log slice is not the one the threshold is fitted on.
    examples = training_stream(held, seed=101, mix=threshold_mix())[:THRESHOLD_EXAMPLES]
    reader = Reader.load(model_dir)
    rows = []
    for ex in examples:
        reading = reader.read(ex.question, [ex.context])
        top = reading.spans[0] if reading.spans else None
        rows.append(Row((ex.answer_text,) if ex.answerable else (), top.text if top else "",
                        top.score if top else float("-inf")))
    t = best_threshold(rows)
    return t, summarize(rows, t)


def add_train_arguments(sp: argparse.ArgumentParser) -> None:
    """The flags of `rag train-reader`."""
    sp.add_argument("--data", default="../shared/datasets/squad",
                    help="folder with train-v1.1.jsonl (default: ../shared/datasets/squad)")
    sp.add_argument("--out", required=True, help="run folder: checkpoint, log, config "
                    "(keep it outside the work tree)")
    sp.add_argument("--minutes", type=float, default=0.0, help="stop after N minutes (resume later)")
    sp.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    sp.add_argument("--examples", type=int, default=40_000,
                    help="examples in the learning-rate plan (default 40000, ~75 min on 2 cores)")
    sp.add_argument("--init", help="start from these weights with a fresh schedule: a run "
                    "folder or checkpoint, or an exported reader folder (continue the shipped "
                    "model: --init rag/answering/reader_model)")
    sp.add_argument("--skip", type=int, default=0,
                    help="leave out the first N examples of the (seeded) stream: with --init, "
                    "the examples the earlier run already trained on, so it reads new ones")
    sp.add_argument("--seed", type=int, default=0,
                    help="the stream's seed: its order and which negative each question becomes "
                    "(default 0; another seed for a further pass over the data)")
    sp.add_argument("--steps", type=int, default=0,
                    help="stop after N steps, the learning-rate plan unchanged (to repeat a run "
                    "that stopped early, e.g. on --minutes)")
    sp.add_argument("--mix", default="", help="the negatives' shares, e.g. "
                    "answer=.55,edit=.25,other_paragraph=.1,minus_sentence=.1 (default: "
                    "rag/training/negatives.py MIX)")
    sp.add_argument("--export", metavar="DIR", help="after training, export the reader to DIR "
                    "(default: no export; the shipped model lives in rag/answering/reader_model)")
    sp.add_argument("--limit", type=int, default=0, help="use only the first N questions (tests)")
    sp.add_argument("--batch", type=int, default=32, help="examples per step (default 32)")
    sp.add_argument("--checkpoint-minutes", type=float, default=5.0,
                    help="minutes between checkpoints (default 5: a kill loses at most that)")
    sp.add_argument("--checkpoint-steps", type=int, default=0, help="also every N steps")
    sp.add_argument("--holdout", type=int, default=600,
                    help="held-out train examples scored at each checkpoint (default 600)")
    sp.add_argument("--holdout-titles", type=int, default=12,
                    help="articles held out of training for the threshold (default 12)")
    sp.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    sp.add_argument("--threads", type=int, help="torch threads (default: all cores)")


def train_reader(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise RagError("training the reader needs torch and transformers: "
                       "pip install -e '.[train]' (./run setup installs them)") from e
    from rag.training.trainer import CHECKPOINT, TrainConfig, train

    out = Path(args.out)
    if (out / CHECKPOINT).exists() and not args.resume:
        raise InputError(f"{out} already holds a run: pass --resume to continue it, or "
                         "another --out to start afresh")
    if args.resume and not (out / CHECKPOINT).exists():
        raise InputError(f"nothing to resume in {out}: run without --resume to start")
    if not Path(args.data, "train-v1.1.jsonl").is_file():
        raise InputError(f"no train-v1.1.jsonl in {args.data}: pass --data with SQuAD 1.1 train")
    parse_mix(args.mix)  # a bad mix fails now, not after the data has loaded
    init = args.init or ""
    if init and (Path(init) / "reader.json").is_file() and not args.resume:
        from rag.training.export import checkpoint_from_reader

        # An exported reader holds no torch weights: its (dequantized) ONNX ones become a
        # checkpoint in the run folder, which then records where it came from.
        init = str(checkpoint_from_reader(init, out / "init-from-reader.pt"))
        print(f"starting from the reader in {args.init} (int8 weights, dequantized)")
    cfg = TrainConfig(data=str(args.data), out=str(out), minutes=args.minutes,
                      plan_examples=args.examples, limit=args.limit, threads=args.threads or 0,
                      init=init, skip=args.skip, steps=args.steps, mix=args.mix, batch=args.batch,
                      checkpoint_minutes=args.checkpoint_minutes,
                      checkpoint_steps=args.checkpoint_steps, holdout_eval=args.holdout, seed=args.seed,
                      holdout_titles=args.holdout_titles, lr=args.lr)
    if args.resume:  # the run's own settings, whatever the flags say, so it continues exactly
        saved = json.loads((out / "config.json").read_text())
        cfg = TrainConfig(**{**saved, "minutes": args.minutes})
    train(cfg)
    if args.export:
        from rag.training.export import export_reader

        # Exported once to measure the threshold, then again with it recorded.
        export_reader(out, args.export, threshold=0.0)
        threshold, scores = choose_threshold(args.export, cfg.data, cfg.limit, cfg.holdout_titles)
        export_reader(out, args.export, threshold=threshold,
                      info={"threshold_from": f"best F1 on {THRESHOLD_EXAMPLES} held-out train "
                            "questions, half answerable, half negatives made from their own "
                            "paragraph (edit, swap, minus_sentence)", "threshold_scores": scores})
        print(f"exported to {args.export}: threshold {threshold:.3f} ({scores})")
    return 0
