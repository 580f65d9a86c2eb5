"""Chunk-size ablation: the seeds gold and a SQuAD 2.0 slice, indexed at several chunk sizes.

    python eval/ablate_chunks.py                       # 96, 160, 256 tokens
    python eval/ablate_chunks.py --sizes 128 192 --squad-limit 100 --json /tmp/chunks.json
    python eval/ablate_chunks.py --report /tmp/report-chunks

Each size gets its own index under --work (reused on the next run). Overlap is a quarter of
the chunk size (160 -> 40, the default). Printed per size and gold set: hit@1/@5 (a passage
from the gold source or holding a gold answer), passage hit@1/@5 (holding a gold answer),
answer contains gold, token F1, abstain recall, false abstention, p50 latency (ms) and the
number of chunks. The SQuAD slice is skipped with a message where ../shared/datasets is
absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from rag import ChunkSpec
from rag.eval.benchmarks import bench_squad
from rag.eval.runner import evaluate, open_index, write_outputs

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "datasets" / "squad2-500" / "qa.jsonl"
COLUMNS = ("hit@1", "hit@5", "passage hit@1", "passage hit@5", "answer_contains", "token_f1",
           "abstain_recall", "false_abstention", "latency_p50_ms", "chunks")
NOT_RATES = ("latency_p50_ms", "chunks")  # printed, left out of the plot


def _row(result: dict[str, Any], chunks: int) -> dict[str, float]:
    row = {c: result[c] for c in COLUMNS if c in result}
    row.update({f"passage {k}": result["passage"][k] for k in ("hit@1", "hit@5")})
    row["chunks"] = chunks
    return row


def run(sizes: list[int], work: Path, gold: Path, corpus: Path, squad: Path | None,
        squad_limit: int, threads: int | None) -> dict[str, dict[str, float]]:
    """{"<set> <size>": {metric: value}} for every gold set and chunk size."""
    table: dict[str, dict[str, float]] = {}
    for size in sizes:
        spec = ChunkSpec(max_tokens=size, overlap_tokens=size // 4)
        idx, seconds = open_index(corpus, work / f"seeds-{size}", chunking=spec, threads=threads)
        result = evaluate(gold, idx, index_seconds=seconds)
        table[f"seeds {size}"] = _row(result, idx.stats().chunks)
        idx.close()
        print(f"seeds {size}: done", file=sys.stderr, flush=True)
        if squad is not None:
            index_dir = work / f"squad-{squad_limit}-{size}"
            result = bench_squad(squad, index_dir, limit=squad_limit, chunking=spec,
                                 threads=threads)
            table[f"squad {size}"] = _row(result, result["n_chunks"])
            print(f"squad {size}: done", file=sys.stderr, flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 160, 256])
    p.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "seeds.jsonl")
    p.add_argument("--corpus", type=Path, default=ROOT / "seeds")
    p.add_argument("--squad", type=Path, default=SQUAD)
    p.add_argument("--squad-limit", type=int, default=100, help="first N SQuAD questions")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rag-ablate-chunks")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", dest="json_out")
    p.add_argument("--report")
    args = p.parse_args(argv)
    squad: Path | None = args.squad
    if squad is not None and not squad.is_file():
        print(f"skipped SQuAD: {squad} not found (../shared is only in a dev checkout)")
        squad = None
    table = run(args.sizes, args.work, args.gold, args.corpus, squad, args.squad_limit,
                args.threads)
    width = max(len(name) for name in table)
    print(f"{'':<{width}}  " + "  ".join(f"{c:>{len(c)}}" for c in COLUMNS))
    for name, row in table.items():
        print(f"{name:<{width}}  " + "  ".join(
            f"{row[c]:>{len(c)}.0f}" if c in NOT_RATES else f"{row[c]:>{len(c)}.3f}"
            for c in COLUMNS))
    ablations = {name: {k: v for k, v in row.items() if k not in NOT_RATES}
                 for name, row in table.items()}
    write_outputs({"ablations": ablations, "table": table},
                  args.json_out, args.report, "Chunk-size ablation",
                  "Overlap is a quarter of the chunk size. hit@5 counts a passage from the gold "
                  "source or holding a gold answer; passage hit@5 only one holding a gold "
                  f"answer. SQuAD: the first {args.squad_limit} questions of squad2-500.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
