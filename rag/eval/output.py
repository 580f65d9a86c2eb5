"""The eval result on the terminal (`summary_table`) and on disk (`write_outputs`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def table(rows: Sequence[tuple[str, Any]]) -> str:
    """Two aligned columns for the terminal.

    >>> print(table([("hit@1", 0.5), ("n", 3)]))
    hit@1  0.500
    n      3
    """
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_fmt(value)}" for name, value in rows)


def summary_table(result: dict[str, Any]) -> str:
    """The terminal table of an eval result."""
    p = result.get("passage") or {}
    rows: list[tuple[str, Any]] = [
        ("questions", (f"{result['n']} ({result['n_answerable']} answerable, "
                       f"{result['n_unanswerable']} unanswerable)")),
        ("hit@1 / @5 / @10", " / ".join(_fmt(result[f"hit@{k}"]) for k in (1, 5, 10))),
        ("MRR", result["mrr"]),
        ("passage hit@1 / @5 / @10", " / ".join(_fmt(p.get(f"hit@{k}")) for k in (1, 5, 10))),
        ("passage MRR", p.get("mrr")),
        ("answer contains gold", result["answer_contains"]),
        ("strict answer contains", result.get("strict_contains")),
        ("short answer contains / EM / F1",
         " / ".join(_fmt(result.get(k)) for k in ("short_contains", "short_em", "short_f1"))),
        ("sentences per answer", result.get("sentences_per_answer")),
        ("token F1", result["token_f1"]),
        ("citation precision", result["citation_precision"]),
        ("passage citation precision", p.get("citation_precision")),
        ("abstain precision", result["abstain_precision"]),
        ("abstain recall", result["abstain_recall"]),
        ("false abstention", result["false_abstention"]),
        ("best threshold (sweep)", result["threshold"]),
        ("latency p50 / p95 (ms)",
         f"{result['latency_p50_ms']:.0f} / {result['latency_p95_ms']:.0f}"),
        ("index seconds", result["index_seconds"]),
    ]
    lines = [table(rows), "(retrieval metrics are over answerable questions only)"]
    for name, fig in (result.get("splits") or {}).items():
        ci = fig.get("ci", {})
        def rate(key: str, fig: dict[str, Any] = fig, ci: dict[str, Any] = ci) -> str:
            lo_hi = ci.get(key)
            return (f"{_fmt(fig.get(key))} [{lo_hi[0]:.2f}-{lo_hi[1]:.2f}]" if lo_hi
                    else _fmt(fig.get(key)))
        lines.append(
            f"split {name} ({fig['n_answerable']} answerable, {fig['n_unanswerable']} "
            f"unanswerable): hit@5 {rate('hit@5')}, answer contains {rate('answer_contains')}, "
            f"strict {rate('strict_contains')}, short contains {rate('short_contains')}, "
            f"sentences {_fmt(fig.get('sentences_per_answer'))}, abstain recall "
            f"{rate('abstain_recall')}, false abstention {rate('false_abstention')}")
    for mode, row in (result.get("ablations") or {}).items():
        lines.append(f"{mode:>8}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return "\n".join(lines)


def notes(result: dict[str, Any]) -> str:
    """The report's reading notes: what each figure is computed over."""
    p = result.get("passage") or {}
    strict = ", ".join(f"{k} {v:.3f}" for k, v in p.items())
    return (
        f"Retrieval metrics (hit@k, MRR, the hit@k curve and the ablations) are over the "
        f"{result['n_answerable']} answerable questions only, on the 10 passages `retrieve()` "
        "returns for the question. A passage is a hit when it contains a gold answer string or "
        "comes from the gold source article; counting only passages (and citations) that "
        f"contain a gold answer string: {strict}. Answer contains and citation precision are "
        "over answerable questions; token F1 is over all questions (an unanswerable question "
        "scores 1 when the answer abstained). The abstention threshold is the sweep's most "
        "accurate one; the answerer abstains when the reader finds no span above its "
        "threshold (confidence = the logistic of the reader's margin). Short-answer figures are over all "
        "answerable questions (no short answer counts as a miss); intervals are 95 % Wilson."
    )


def add_notes(report: Path, title: str, intro: str) -> None:
    """Put a paragraph under the title of a `write_report` page."""
    text = report.read_text(encoding="utf-8")
    head = f"# {title}\n\n"
    if text.startswith(head):
        text = head + intro + "\n\n" + text[len(head):]
    else:
        text = text.rstrip() + "\n\n## Notes\n\n" + intro + "\n"
    report.write_text(text, encoding="utf-8")


def write_outputs(result: dict[str, Any], json_out: str | None, report_dir: str | None,
                  title: str, intro: str) -> None:
    """Write `--json` and `--report` (Markdown with PNG plots) where asked."""
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                                  encoding="utf-8")
        print(f"wrote {json_out}")
    if report_dir:
        from rag.eval.report import write_report

        path = write_report(result, Path(report_dir), title)
        add_notes(path, title, intro)
        print(f"wrote {path}")
