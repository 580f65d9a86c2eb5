"""The short answer on SQuAD given the gold paragraph: the setting of SQuAD's 51.0 anchor.

    python -m rag.eval.squad_short ../shared/datasets/squad2-500/qa.jsonl --json out.json

The SQuAD paper's logistic-regression span extractor (F1 51.0 on SQuAD 1.1 dev) was trained
on 87k questions and given the gold paragraph. Here, with no training, each answerable
question gets its gold paragraph as the only passage; the answerer scores its sentences
(`score_sentences`), picks the lead sentence and its short answer (`short.lead`) exactly as
`answer()` does, and the short answer is scored by SQuAD exact match and token F1 over
ALL answerable questions (no short answer scores 0). Figures are given for the paragraphs
in `eval/squad_fit_ids.txt` (the short answer's weights were chosen there) and, separately,
for the others (the held-out figure to quote).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.eval.metrics import exact_match, token_f1, wilson

if TYPE_CHECKING:
    from rag.embed.embedder import Embedder

ANCHOR_F1 = 51.0  # Rajpurkar et al. 2016, logistic regression, SQuAD 1.1 dev
FIT_IDS = Path(__file__).resolve().parents[2] / "eval" / "squad_fit_ids.txt"


def read_ids(path: Path) -> set[str]:
    """Question ids, one a line; '#' lines are comments."""
    return {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")}


def short_answer(question: str, paragraph: str, embedder: Embedder) -> str | None:
    """The answerer's short answer to `question` from `paragraph` alone, or None."""
    from rag.answering.extractive import score_sentences
    from rag.answering.short import lead
    from rag.results import Hit

    hit = Hit(article_id="p", title="", published=None, source=None, url=None, path=None,
              rank=1, score=1.0, chunk_id=0, text=paragraph, start=0, end=len(paragraph))
    scored = score_sentences(question, [hit], embedder)
    if not scored:
        return None
    _, span = lead(question, scored)
    return span.text if span is not None else None


def evaluate(rows: Sequence[dict[str, Any]], embedder: Embedder,
             fit_ids: set[str]) -> dict[str, Any]:
    """EM / F1 (percent) of the short answer over the answerable rows, per half."""
    from rag.answering.short import asked_kind

    halves: dict[str, list[tuple[float, float, bool]]] = {"fit": [], "held_out": []}
    kinds: dict[str, list[float]] = {}
    for row in rows:
        answers = row.get("answers") or []
        if isinstance(answers, dict):
            answers = answers.get("text") or []
        if row.get("is_impossible") or not answers:
            continue
        pred = short_answer(str(row["question"]), str(row["context"]), embedder)
        em = exact_match(pred, answers) if pred else 0.0
        f1 = token_f1(pred, answers) if pred else 0.0
        half = "fit" if str(row["id"]) in fit_ids else "held_out"
        halves[half].append((em, f1, pred is not None))
        if half == "held_out":
            kinds.setdefault(str(asked_kind(str(row["question"]))), []).append(f1)
    out: dict[str, Any] = {"anchor_f1": ANCHOR_F1}
    for half, got in halves.items():
        n = len(got)
        em = sum(g[0] for g in got)
        lo, hi = wilson(em, n)
        out[half] = {"n": n, "em": round(100 * em / n, 1) if n else 0.0,
                     "f1": round(100 * sum(g[1] for g in got) / n, 1) if n else 0.0,
                     "em_ci": [round(100 * lo, 1), round(100 * hi, 1)],
                     "short_given": round(sum(g[2] for g in got) / n, 3) if n else 0.0}
    out["held_out_f1_by_kind"] = {k: {"n": len(v), "f1": round(100 * sum(v) / len(v), 1)}
                                  for k, v in sorted(kinds.items())}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rag.eval.squad_short", description=__doc__)
    ap.add_argument("qa", help="SQuAD 2.0 JSONL (id, question, context, answers, is_impossible)")
    ap.add_argument("--fit-ids", default=str(FIT_IDS))
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    qa = Path(args.qa)
    if not qa.is_file():
        print(f"error: no SQuAD file at {qa}", file=sys.stderr)
        return 1
    from rag.embed.embedder import SentenceTransformerEmbedder

    rows = [json.loads(ln) for ln in qa.read_text(encoding="utf-8").splitlines() if ln.strip()]
    result = evaluate(rows, SentenceTransformerEmbedder(), read_ids(Path(args.fit_ids)))
    for half in ("held_out", "fit"):
        r = result[half]
        print(f"{half}: {r['n']} answerable, short answer EM {r['em']} F1 {r['f1']} "
              f"(given {r['short_given']:.0%}); SQuAD paper's logistic regression F1 "
              f"{ANCHOR_F1}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
