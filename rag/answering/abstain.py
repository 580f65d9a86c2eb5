"""When to say "not in the articles": a small logistic model over what the evidence lacks.

Retrieval always returns something, so "nothing found" is rare; what marks a question the
articles do not answer is what the best passages *lack*:
- the question's key terms (weighted by the index's own IDF: rare words and names count
  most) missing from every retrieved passage, and from the best sentence;
- the kind of thing asked for (a number, a date, a name) missing from the best sentences;
- weak or flat scores (the best sentence no better than the fifth).
No feature uses dates: news-dev's unanswerable questions are older than its answerable
ones, and a date feature would learn the data set, not the question.

The weights are fitted by `rag.eval.fit` (numpy logistic regression, L2) and stored below
as constants; nothing is fitted or read from disk at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.answering.extractive import Scored, content_terms, missing_names
from rag.answering.short import asked_kind, typed_spans
from rag.index.lexical import tokenize
from rag.results import Hit

if TYPE_CHECKING:
    from rag.index.facade import Index

FEATURES = ("top", "dense", "flat", "miss_passages", "miss_best", "miss_rare", "kind_missing",
            "span", "hit_top", "names_missing")
KIND_SENTENCES = 3  # the asked-for kind is looked for in this many best sentences
FLAT_AT = 4  # flatness: the best sentence's score minus the fifth's

# The model reads these five (all ten are recorded by `rag eval --features`). With all ten,
# fitted the same way, the model did not carry over to a one-article index (seed gold false
# abstention 0.35). The five were chosen among all subsets, each fitted as below, as the
# one with the best abstention recall on news-dev's tune split among those with no false
# abstention on the seed gold that still refuse "What did the French president say about
# the strikes?" (the seed gold is thus a constraint of the choice, not held out).
# Fitted on news-dev's tune split (146 questions, 30 unanswerable) plus the fitting half of
# SQuAD2-500 (eval/squad_fit_ids.txt: 242 questions, 129 unanswerable), from `--features`
# eval runs with abstention off and recency weight 0.05: numpy logistic regression
# (`rag.eval.fit.fit_logistic`, standardised with these means and scales, L2 1.0).
MODEL_FEATURES = ('top', 'miss_passages', 'miss_rare', 'span', 'names_missing')
MEANS = (0.5465, 0.1885, 0.4547, 2.2733, 0.1211)
SCALES = (0.158, 0.1992, 0.4002, 0.863, 0.4039)
WEIGHTS = (-0.2285, -0.0501, 0.2253, 0.0446, 0.157)
BIAS = -0.3764
_PICK = tuple(FEATURES.index(f) for f in MODEL_FEATURES)  # where the model's features sit
# Abstain when P(unanswerable) reaches this: the lowest cut (most abstention recall) whose
# false abstention on news-dev's tune split stays within 0.08 (the target is 0.10).
ABSTAIN_AT = 0.5662


@dataclass(frozen=True)
class Evidence:
    """The abstention features of one question, in `FEATURES` order, and the verdict."""

    values: tuple[float, ...]
    p_unanswerable: float

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.values))


def _lexical(index: Index | None) -> Any:
    """The index's BM25 statistics (its current lexical part), or None."""
    state = getattr(index, "_current", None)
    return getattr(state(), "lexical", None) if callable(state) else None


def _live(index: Index | None) -> int:
    return max(int(getattr(_lexical(index), "n_live", 1)), 1)


def _idf(index: Index | None, terms: Sequence[str]) -> dict[str, float]:
    """IDF of each stemmed term in the index's BM25 statistics (unseen terms: the highest)."""
    lex = _lexical(index)
    if lex is None or not getattr(lex, "n_live", 0):
        return {t: 1.0 for t in terms}
    n = lex.n_live
    out = {}
    for t in terms:
        df = sum(len(p[0]) for s in lex.segments if (p := s.postings(t)) is not None)
        out[t] = math.log1p((n - df + 0.5) / (df + 0.5))
    return out


def _stems(text: str) -> set[str]:
    return set(tokenize([text])[0])


def features(question: str, hits: Sequence[Hit], scored: Sequence[Scored],
             index: Index | None = None) -> tuple[float, ...]:
    """The `FEATURES` of a question given its passages and scored sentences."""
    terms = content_terms(question)
    idf = _idf(index, terms)
    total = sum(idf.values()) or 1.0
    hay = _stems(" ".join(f"{h.title} {h.text}" for h in hits))
    best = _stems(scored[0].text) if scored else set()
    missing = [t for t in terms if t not in hay]
    top_idf = math.log1p(_live(index) + 0.5)
    kind = asked_kind(question)
    span = 0.0
    kind_missing = 0.0
    if kind is not None and scored:
        spans = [sp for s in scored[:KIND_SENTENCES] for sp in typed_spans(question, s.text)]
        span = max((sp.score for sp in spans), default=0.0)
        # The asked-for kind must sit near the question's own words, not anywhere.
        kind_missing = float(not any(sp.near > 0 for sp in spans))
    top = scored[0].score if scored else 0.0
    flat = top - scored[min(FLAT_AT, len(scored) - 1)].score if scored else 0.0
    return (
        top,
        scored[0].dense if scored else 0.0,
        flat,
        sum(idf[t] for t in missing) / total,
        sum(idf[t] for t in terms if t not in best) / total,
        max((idf[t] for t in missing), default=0.0) / top_idf,
        kind_missing,
        span,
        hits[0].score if hits else 0.0,
        float(len(missing_names(question, hits))),
    )


def probability(values: Sequence[float]) -> float:
    """P(the articles do not answer the question) from the fitted model."""
    picked = [values[i] for i in _PICK]
    z = BIAS + sum(w * (v - m) / s for w, v, m, s in zip(WEIGHTS, picked, MEANS, SCALES))
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def judge(question: str, hits: Sequence[Hit], scored: Sequence[Scored],
          index: Index | None = None) -> Evidence:
    """The features and the probability that the articles do not hold the answer."""
    values = features(question, hits, scored, index)
    return Evidence(tuple(round(v, 6) for v in values), probability(values))

