"""`write_report`: an eval result as a Markdown page with PNG plots.

The result is the eval runner's JSON-ready mapping. Its fixed keys are `n`,
`hit@1`, `hit@5`, `hit@10`, `mrr`, `answer_contains`, `token_f1`,
`citation_precision`, `abstain_precision`, `abstain_recall`, `false_abstention`,
`latency_p50_ms`, `latency_p95_ms`, `index_seconds` and `questions` (one mapping
per question with `id`, `question`, `answer`, `abstained`, `unanswerable`,
`confidence`, `latency_ms`, `hit_rank`, `contains`, `f1`, `citations`).
Optional keys: `threshold` (the abstention threshold), other `hit@k` keys,
`hit_curve` (hit@k for k = 1, 2, ..., or `[k, value]` pairs; used instead of the
`hit@k` keys), `sweep` (rows of `rag.eval.metrics.threshold_sweep`, as lists or
mappings) and `ablations` (`{name: {metric: value}}`). Any key may be missing
or null; its row or plot is then left out.

matplotlib is imported inside `write_report`, and figures are drawn on the Agg
canvas directly (no pyplot), so importing this module is cheap and no global
backend state changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

__all__ = ["write_report"]

# (key, label, what it means); the order of the Markdown metrics table.
_METRICS: tuple[tuple[str, str, str], ...] = (
    ("n", "questions", "questions scored"),
    ("hit@1", "hit@1", "a gold passage ranked first"),
    ("hit@5", "hit@5", "a gold passage in the top 5"),
    ("hit@10", "hit@10", "a gold passage in the top 10"),
    ("mrr", "MRR", "mean reciprocal rank of the first gold passage"),
    ("answer_contains", "answer contains gold", "answer contains a gold string"),
    ("token_f1", "token F1", "SQuAD token F1 against the gold answers"),
    ("strict_contains", "strict answer contains", "a quote holds the gold and the evidence's words"),
    ("short_contains", "short answer contains", "the short answer holds a gold string (all answerable)"),
    ("short_em", "short answer EM", "short answer equals a gold span (all answerable)"),
    ("short_f1", "short answer F1", "token F1 of the short answer (all answerable)"),
    ("sentences_per_answer", "sentences per answer", "quoted sentences per answer given"),
    ("citation_precision", "citation precision", "citations that support the answer"),
    ("abstain_precision", "abstain precision", "abstentions that were on unanswerable questions"),
    ("abstain_recall", "abstain recall", "unanswerable questions abstained on"),
    ("false_abstention", "false abstention", "answerable questions abstained on"),
    ("latency_p50_ms", "latency p50 (ms)", "median time per question"),
    ("latency_p95_ms", "latency p95 (ms)", "95th percentile time per question"),
    ("index_seconds", "index time (s)", "time to build the index"),
    ("threshold", "abstention threshold", "abstain when confidence is below this"),
)
# Times need fewer decimals than rates.
_DIGITS = {"latency_p50_ms": 1, "latency_p95_ms": 1, "index_seconds": 2, "latency_ms": 0}
_HIT_KEY = re.compile(r"^hit@(\d+)$")
_SWEEP_FIELDS = ("threshold", "abstain_precision", "abstain_recall", "false_abstention", "accuracy")

FigureFactory = Callable[..., "Figure"]


def _num(value: Any) -> float | None:
    """`value` as a finite float, or None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    number = _num(value)
    if number is None:
        return "—" if value is None else _cell(str(value))
    return f"{number:.{digits}f}" if abs(number) < 1000 else f"{number:,.0f}"


def _cell(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _hit_curve(result: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(k, hit@k) points from `hit_curve` if given, else from the `hit@k` keys."""
    points: dict[int, float] = {}
    curve = result.get("hit_curve")
    if isinstance(curve, Sequence) and not isinstance(curve, str):
        for i, item in enumerate(curve):
            if isinstance(item, Mapping):
                k, v = item.get("k"), item.get("hit", item.get("value"))
            elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
                k, v = item
            else:
                k, v = i + 1, item
            if isinstance(k, int) and (value := _num(v)) is not None:
                points[k] = value
    if not points:
        for key, v in result.items():
            match = _HIT_KEY.match(str(key))
            if match and (value := _num(v)) is not None:
                points[int(match.group(1))] = value
    return sorted(points.items())


def _sweep(result: Mapping[str, Any]) -> list[tuple[float, ...]]:
    """The `sweep` rows as 5-tuples in `_SWEEP_FIELDS` order; malformed rows dropped."""
    rows: list[tuple[float, ...]] = []
    sweep = result.get("sweep")
    if not isinstance(sweep, Sequence) or isinstance(sweep, str):
        return rows
    for item in sweep:
        if isinstance(item, Mapping):
            raw = [item.get(f) for f in _SWEEP_FIELDS]
        elif isinstance(item, Sequence) and not isinstance(item, str):
            raw = list(item[: len(_SWEEP_FIELDS)])
        else:
            continue
        values = [_num(v) for v in raw]
        if len(values) == len(_SWEEP_FIELDS) and all(v is not None for v in values):
            rows.append(tuple(v for v in values if v is not None))
    return sorted(rows)


def _questions(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    questions = result.get("questions")
    if not isinstance(questions, Sequence) or isinstance(questions, str):
        return []
    return [q for q in questions if isinstance(q, Mapping)]


def _integer_ticks() -> MaxNLocator:
    from matplotlib.ticker import MaxNLocator  # matplotlib is loaded by now

    return MaxNLocator(integer=True)


def _plot_hits(new: FigureFactory, result: Mapping[str, Any], path: Path) -> bool:
    curve = _hit_curve(result)
    if not curve:
        return False
    fig = new()
    ax = fig.add_subplot()
    ks, values = zip(*curve)
    ax.plot(ks, values, marker="o")
    for k, v in curve:
        ax.annotate(f"{v:.2f}", (k, v), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set(xlabel="k", ylabel="hit@k", title="Gold passage in the top k", ylim=(0, 1.05))
    ax.set_xticks(list(ks))
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return True


def _plot_confidence(
    new: FigureFactory, result: Mapping[str, Any], threshold: float | None, path: Path
) -> bool:
    answerable: list[float] = []
    unanswerable: list[float] = []
    for q in _questions(result):
        if (c := _num(q.get("confidence"))) is not None:
            (unanswerable if q.get("unanswerable") else answerable).append(c)
    scores = answerable + unanswerable
    if not scores:
        return False
    lo, hi = min(scores), max(scores)
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    fig = new()
    ax = fig.add_subplot()
    bins = 20
    if answerable:
        ax.hist(answerable, bins=bins, range=(lo, hi), alpha=0.6, label="answerable")
    if unanswerable:
        ax.hist(unanswerable, bins=bins, range=(lo, hi), alpha=0.6, label="unanswerable")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="confidence", ylabel="questions", title="Confidence by question type")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.legend()
    fig.savefig(path)
    return True


def _plot_sweep(
    new: FigureFactory, rows: list[tuple[float, ...]], threshold: float | None, path: Path
) -> bool:
    if not rows:
        return False
    thresholds, precision, recall, false_abstention, accuracy = zip(*rows)
    fig = new(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    left.plot(false_abstention, recall, marker=".")
    left.set(
        xlabel="false abstention (answerable abstained on)",
        ylabel="abstain recall (unanswerable caught)",
        title="Abstention trade-off",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    left.grid(alpha=0.3)
    for values, label in (
        (accuracy, "accuracy"),
        (precision, "abstain precision"),
        (recall, "abstain recall"),
        (false_abstention, "false abstention"),
    ):
        right.plot(thresholds, values, label=label)
    if threshold is not None:
        right.axvline(threshold, color="black", linestyle="--", label="threshold")
    right.set(xlabel="threshold", ylabel="rate", title="By threshold", ylim=(-0.02, 1.02))
    right.grid(alpha=0.3)
    right.legend(fontsize="small")
    fig.savefig(path)
    return True


def _plot_short_by_kind(new: FigureFactory, result: Mapping[str, Any], path: Path) -> bool:
    kinds = result.get("short_by_kind")
    if not isinstance(kinds, Mapping) or not kinds:
        return False
    names = list(kinds)
    fig = new(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    width = 0.4
    for i, (key, label) in enumerate((("short_given", "short answer given"),
                                      ("short_contains", "short answer holds gold"))):
        ax.bar([x + (i - 0.5) * width for x in range(len(names))],
               [float(kinds[k].get(key) or 0.0) for k in names], width, label=label)
    ax.set_xticks(range(len(names)), [f"{k}\n(n={kinds[k].get('n')})" for k in names])
    ax.set(ylabel="share of answerable questions", ylim=(0, 1.05),
           title="Short answers by what the question asks for")
    ax.legend(fontsize="small")
    fig.savefig(path)
    return True


def _plot_latency(new: FigureFactory, result: Mapping[str, Any], path: Path) -> bool:
    latencies = [v for q in _questions(result) if (v := _num(q.get("latency_ms"))) is not None]
    if not latencies:
        return False
    fig = new()
    ax = fig.add_subplot()
    ax.hist(latencies, bins=min(30, max(5, len(latencies) // 2)))
    for key, name, style in (("latency_p50_ms", "p50", "--"), ("latency_p95_ms", "p95", ":")):
        if (v := _num(result.get(key))) is not None:
            ax.axvline(v, color="black", linestyle=style, label=f"{name} {v:.0f} ms")
    ax.set(xlabel="latency (ms)", ylabel="questions", title="Time per question")
    ax.yaxis.set_major_locator(_integer_ticks())
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.savefig(path)
    return True


def _ablations(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    ablations = result.get("ablations")
    if not isinstance(ablations, Mapping):
        return {}
    table: dict[str, dict[str, float]] = {}
    for name, metrics in ablations.items():
        if isinstance(metrics, Mapping):
            row = {str(m): v for m, raw in metrics.items() if (v := _num(raw)) is not None}
            if row:
                table[str(name)] = row
    return table


def _plot_ablations(new: FigureFactory, table: dict[str, dict[str, float]], path: Path) -> bool:
    if not table:
        return False
    metrics = sorted({m for row in table.values() for m in row})
    names = list(table)
    width = 0.8 / len(names)
    fig = new(figsize=(max(6.0, 1.2 * len(metrics) * max(1, len(names) / 2)), 4))
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(xs, [table[name].get(m, 0.0) for m in metrics], width=width, label=name)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=30, ha="right")
    ax.set(title="Ablations")
    ax.legend(fontsize="small")
    fig.savefig(path)
    return True


def _ablations_table(table: dict[str, dict[str, float]]) -> list[str]:
    if not table:
        return []
    metrics = sorted({m for row in table.values() for m in row})
    return [
        "| ablation | " + " | ".join(_cell(m) for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
        *(
            f"| {_cell(name)} | " + " | ".join(_fmt(row.get(m)) for m in metrics) + " |"
            for name, row in table.items()
        ),
        "",
    ]


def _questions_table(result: Mapping[str, Any]) -> list[str]:
    questions = _questions(result)
    if not questions:
        return []
    lines = [
        "## Questions",
        "",
        "| id | question | unanswerable | abstained | hit rank | contains | F1 | confidence"
        + " | latency (ms) | answer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q in questions:
        cells = [
            _cell(str(q.get("id", ""))),
            _cell(str(q.get("question", ""))),
            *(
                _fmt(q.get(k), _DIGITS.get(k, 3))
                for k in (
                    "unanswerable",
                    "abstained",
                    "hit_rank",
                    "contains",
                    "f1",
                    "confidence",
                    "latency_ms",
                )
            ),
            _cell(str(q.get("answer") or ""), width=120),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_report(result: Mapping[str, Any], out_dir: Path, title: str) -> Path:
    """Write `report.md` and its PNG plots into `out_dir`; return the path of `report.md`.

    Plots (each only when its data is there): `hit_at_k.png`, `confidence.png`
    (answerable vs unanswerable, with `result["threshold"]`), `abstention.png`
    (from `result["sweep"]`), `latency.png` and `ablations.png`. The Markdown
    embeds them by relative path.

    Example: ``write_report({"n": 1, "hit@1": 1.0}, Path("out"), "Demo")`` writes
    ``out/report.md`` (a one-row metrics table plus the hit@k plot) and
    ``out/hit_at_k.png``, and returns ``Path("out/report.md")``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new(figsize: tuple[float, float] = (6.4, 4.2)) -> Figure:
        fig = Figure(figsize=figsize, dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        return fig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = _num(result.get("threshold"))
    ablations = _ablations(result)

    lines = [f"# {title}", ""]
    rows = [
        f"| {label} | {_fmt(result[key], _DIGITS.get(key, 3))} | {meaning} |"
        for key, label, meaning in _METRICS
        if result.get(key) is not None
    ]
    if rows:
        lines += ["## Metrics", "", "| metric | value | meaning |", "|---|---|---|", *rows, ""]

    plots: tuple[tuple[str, str, Callable[[Path], bool]], ...] = (
        ("Retrieval", "hit_at_k.png", lambda p: _plot_hits(new, result, p)),
        ("Confidence", "confidence.png", lambda p: _plot_confidence(new, result, threshold, p)),
        (
            "Abstention trade-off",
            "abstention.png",
            lambda p: _plot_sweep(new, _sweep(result), threshold, p),
        ),
        ("Short answers by question kind", "short_by_kind.png",
         lambda p: _plot_short_by_kind(new, result, p)),
        ("Latency", "latency.png", lambda p: _plot_latency(new, result, p)),
        ("Ablations", "ablations.png", lambda p: _plot_ablations(new, ablations, p)),
    )
    for heading, filename, plot in plots:
        if plot(out_dir / filename):
            lines += [f"## {heading}", "", f"![{heading}]({filename})", ""]
    lines += _ablations_table(ablations)

    lines += _questions_table(result)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
