"""From the reader's start/end logits to ranked character spans: pure NumPy.

Each window scores its best span as `start[i] + end[j]` over passage tokens with
`i <= j < i + max_tokens`, and "no answer" as `start[CLS] + end[CLS]` (the SQuAD 2.0 null
score). A span's `score` is its margin over its own window's null score: positive means
the window prefers that span to "no answer". Margins compare across windows and passages
(each is measured against its own null), which raw logits do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.answering.windows import Window

MAX_ANSWER_TOKENS = 30  # SQuAD answers are almost all shorter; news answers are names and figures
TOP_PER_WINDOW = 3
N_BEST = 20  # starts and ends considered per window


@dataclass(frozen=True)
class Candidate:
    passage: int
    start: int
    end: int
    score: float  # span logit minus its window's null logit
    span_logit: float
    null_logit: float


def window_candidates(windows: Sequence[Window], start_logits: np.ndarray, end_logits: np.ndarray,
                      max_answer_tokens: int = MAX_ANSWER_TOKENS,
                      top: int = TOP_PER_WINDOW) -> list[Candidate]:
    """The `top` best spans of each window, as character offsets into their passages.

    `start_logits`/`end_logits` are (windows, tokens), padded past each window's length.
    """
    out: list[Candidate] = []
    for w, win in enumerate(windows):
        n = len(win.offsets)
        if n == 0:
            continue
        lo = win.context_start
        s = start_logits[w, lo:lo + n].astype(np.float64)
        e = end_logits[w, lo:lo + n].astype(np.float64)
        null = float(start_logits[w, 0]) + float(end_logits[w, 0])
        # The best starts and ends only, as SQuAD post-processing does (n_best): the full
        # (n, n) grid cost more than the rest of the read outside the encoder.
        starts = np.argsort(s)[::-1][:N_BEST]
        ends = np.argsort(e)[::-1][:N_BEST]
        pairs = [(s[i] + e[j], int(i), int(j)) for i in starts for j in ends
                 if i <= j < i + max_answer_tokens]
        pairs.sort(reverse=True)
        for logit, i, j in pairs[:top]:
            a, b = win.offsets[i][0], win.offsets[j][1]
            if b <= a:
                continue
            out.append(Candidate(win.passage, a, b, float(logit) - null, float(logit), null))
    return out


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first; the same passage span from overlapping windows is kept once, at its best."""
    best: dict[tuple[int, int, int], Candidate] = {}
    for c in candidates:
        key = (c.passage, c.start, c.end)
        if key not in best or c.score > best[key].score:
            best[key] = c
    return sorted(best.values(), key=lambda c: -c.score)
