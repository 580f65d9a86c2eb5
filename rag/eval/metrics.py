"""Pure scoring functions for the eval runner and the benchmarks.

Answer text: `normalize`, `contains_answer`, `token_f1`.
Retrieval: `hit_at_k`, `reciprocal_rank`, `ndcg_at_k`, `recall_at_k`.
Latency: `percentile`.
Abstention: `abstention_scores`, `threshold_sweep`, `best_threshold`.

Empty denominators never produce NaN. The rule throughout: when there is nothing
to get wrong, the score is the best possible value (precision/recall 1.0, error
rates 0.0); when there is nothing to find (no relevant documents), retrieval
scores are 0.0. Each function's docstring says which case applies.
"""

from __future__ import annotations

import math
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple

__all__ = [
    "SweepPoint",
    "abstention_scores",
    "best_threshold",
    "contains_answer",
    "hit_at_k",
    "ndcg_at_k",
    "normalize",
    "percentile",
    "recall_at_k",
    "reciprocal_rank",
    "threshold_sweep",
    "token_f1",
]

# Typographic quotes and dashes fold to their ASCII forms so that an answer typed
# with straight quotes matches an article set with curly ones.
_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u0060\u00b4"  # ‘ ’ ‚ ‛ ′ ` ´
_DQUOTES = "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"  # “ ” „ ‟ ″ « »
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_FOLD = str.maketrans(
    {
        **{c: "'" for c in _QUOTES},
        **{c: '"' for c in _DQUOTES},
        # Hyphens and dashes separate words: "US-provided" contains "US".
        **{c: " " for c in _DASHES + "-"},
    }
)
_ARTICLES = frozenset({"a", "an", "the"})


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P") or ch in string.punctuation


def _strip_token(token: str) -> str:
    start, end = 0, len(token)
    while start < end and _is_punct(token[start]):
        start += 1
    while end > start and _is_punct(token[end - 1]):
        end -= 1
    token = token[start:end]
    # Possessives: "Putin's" should contain the answer "Putin".
    if token.endswith("'s") and len(token) > 2:
        token = token[:-2]
    return token


def normalize(s: str) -> str:
    """Fold `s` for answer matching.

    NFKC, casefold, curly quotes to straight, every dash or hyphen to a space,
    punctuation stripped from both ends of each token, a possessive "'s" dropped,
    whitespace collapsed. Punctuation inside a token stays ("18,000", "u.s").

    >>> normalize("  The “FSB’s”  U.S.-backed\\n plan. ")
    'the fsb u.s backed plan'
    >>> normalize("about 18,000 people")
    'about 18,000 people'
    """
    folded = unicodedata.normalize("NFKC", s).translate(_FOLD).casefold()
    tokens = (_strip_token(t) for t in folded.split())
    return " ".join(t for t in tokens if t)


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """True if any answer occurs in `text` as whole tokens, after `normalize`.

    Answers that normalise to nothing are ignored; no answers gives False.

    >>> contains_answer("It hit  Karachev, a city in “Bryansk” region.", ["Bryansk region"])
    True
    >>> contains_answer("She said two weeks.", ["two week"])
    False
    """
    padded = f" {normalize(text)} "
    for answer in answers:
        gold = normalize(answer)
        if gold and f" {gold} " in padded:
            return True
    return False


def _f1_tokens(s: str) -> list[str]:
    # SQuAD's normalisation on top of ours: no punctuation at all, no articles.
    tokens = ("".join(ch for ch in t if not _is_punct(ch)) for t in normalize(s).split())
    return [t for t in tokens if t and t not in _ARTICLES]


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1: the best F1 of `prediction` against any gold answer.

    Tokens are `normalize`d, stripped of punctuation and of "a", "an", "the".
    With no gold answers (an unanswerable question) the score is 1.0 if the
    prediction is empty and 0.0 otherwise; likewise for a gold answer that is
    empty after normalisation.

    >>> token_f1("the Kursk region", ["Kursk"])
    0.6666666666666666
    >>> token_f1("", [])
    1.0
    """
    pred = _f1_tokens(prediction)
    if not answers:
        return float(not pred)
    return max(_f1(pred, _f1_tokens(a)) for a in answers)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def hit_at_k(ranked_relevant: Sequence[bool], k: int) -> float:
    """1.0 if any of the first `k` results is relevant, else 0.0.

    >>> hit_at_k([False, False, True], 2), hit_at_k([False, False, True], 3)
    (0.0, 1.0)
    """
    _check_k(k)
    return float(any(ranked_relevant[:k]))


def reciprocal_rank(ranked_relevant: Sequence[bool]) -> float:
    """1 / (1-based rank of the first relevant result); 0.0 if none is relevant.

    >>> reciprocal_rank([False, True, True])
    0.5
    """
    for i, relevant in enumerate(ranked_relevant):
        if relevant:
            return 1.0 / (i + 1)
    return 0.0


def _dedup(ranked_ids: Sequence[str]) -> list[str]:
    # pytrec_eval takes a run as a dict, so an id can be ranked only once.
    return list(dict.fromkeys(ranked_ids))


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k as BEIR / pytrec_eval compute it: gain = relevance, discount log2(rank + 1).

    The ideal DCG comes from the qrels (`relevance`), not from the retrieved list.
    Relevance <= 0 counts as no gain; repeated ids count once, at their first rank.
    With no positively relevant id the score is 0.0.

    >>> round(ndcg_at_k(["x", "a"], {"a": 1}, k=10), 4)  # 1/log2(3)
    0.6309
    """
    _check_k(k)
    gains = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    if ideal == 0:
        return 0.0
    dcg = sum(
        max(relevance.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(_dedup(ranked_ids)[:k])
    )
    return dcg / ideal


def recall_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant ids (relevance > 0) found in the first `k` results.

    With no relevant ids the score is 0.0 (pytrec_eval would skip the query;
    callers averaging over queries should leave such queries out).

    >>> recall_at_k(["a", "x", "b"], {"a": 1, "b": 2, "c": 1}, k=2)
    0.3333333333333333
    """
    _check_k(k)
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedup(ranked_ids)[:k])) / len(relevant)


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0..100), linearly interpolated like `numpy.percentile`.

    Raises ValueError on an empty sequence or `p` outside 0..100.

    >>> percentile([10, 20, 30, 40], 50)
    25.0
    >>> percentile([10, 20, 30, 40], 95)
    38.5
    """
    if not values:
        raise ValueError("percentile of no values; pass at least one value")
    if not 0 <= p <= 100:
        raise ValueError(f"p must be between 0 and 100, got {p}")
    ordered = sorted(float(v) for v in values)
    pos = (len(ordered) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def abstention_scores(
    pred_abstain: Sequence[bool], gold_unanswerable: Sequence[bool]
) -> tuple[float, float, float]:
    """(precision, recall, false_abstention_rate) of the decision to abstain.

    - precision: of the questions abstained on, the share that were unanswerable;
      1.0 when nothing was abstained on (no wrong abstention was made).
    - recall: of the unanswerable questions, the share abstained on;
      1.0 when there were no unanswerable questions (none was missed).
    - false abstention rate: of the answerable questions, the share abstained on;
      0.0 when there were no answerable questions.

    A system that never abstains therefore scores (1.0, 0.0, 0.0) on a set with
    unanswerable questions: read precision together with recall.

    >>> abstention_scores([True, True, False, False], [True, False, True, False])
    (0.5, 0.5, 0.5)
    >>> abstention_scores([False, False], [True, False])
    (1.0, 0.0, 0.0)
    """
    if len(pred_abstain) != len(gold_unanswerable):
        raise ValueError(
            f"pred_abstain has {len(pred_abstain)} items but gold_unanswerable has "
            f"{len(gold_unanswerable)}; pass one of each per question"
        )
    pairs = list(zip(pred_abstain, gold_unanswerable))
    abstained = sum(1 for a, _ in pairs if a)
    unanswerable = sum(1 for _, u in pairs if u)
    answerable = len(pairs) - unanswerable
    right = sum(1 for a, u in pairs if a and u)
    wrong = abstained - right
    precision = right / abstained if abstained else 1.0
    recall = right / unanswerable if unanswerable else 1.0
    false_abstention = wrong / answerable if answerable else 0.0
    return precision, recall, false_abstention


class SweepPoint(NamedTuple):
    """One threshold of `threshold_sweep`: abstain when confidence < `threshold`."""

    threshold: float
    abstain_precision: float
    abstain_recall: float
    false_abstention: float
    accuracy: float


def _candidate_thresholds(scores: Sequence[float]) -> list[float]:
    distinct = sorted(set(scores))
    # Abstain on nothing, then cut midway between neighbouring scores (a midpoint
    # generalises better than a threshold sitting on a seen score), then abstain
    # on everything.
    mids = [(a + b) / 2 for a, b in pairwise(distinct)]
    return [distinct[0], *mids, math.nextafter(distinct[-1], math.inf)]


def threshold_sweep(
    scores_answerable: Sequence[float], scores_unanswerable: Sequence[float]
) -> list[SweepPoint]:
    """Score every useful abstention threshold, lowest first.

    The rule is: abstain when confidence < threshold. Candidates are the lowest
    score (abstain on nothing), the midpoints between neighbouring distinct
    scores, and just above the highest score (abstain on everything). Accuracy
    is the share of questions decided right: answerable answered, unanswerable
    abstained on. Zero-division cases follow `abstention_scores`. No scores
    gives an empty list.

    >>> [round(p.threshold, 2) for p in threshold_sweep([0.8, 0.9], [0.2])]
    [0.2, 0.5, 0.85, 0.9]
    >>> threshold_sweep([0.8, 0.9], [0.2])[1].accuracy
    1.0
    """
    scores = [*scores_answerable, *scores_unanswerable]
    if not scores:
        return []
    gold = [False] * len(scores_answerable) + [True] * len(scores_unanswerable)
    points = []
    for t in _candidate_thresholds(scores):
        abstain = [s < t for s in scores]
        precision, recall, false_abstention = abstention_scores(abstain, gold)
        accuracy = sum(a == u for a, u in zip(abstain, gold)) / len(scores)
        points.append(SweepPoint(t, precision, recall, false_abstention, accuracy))
    return points


def best_threshold(
    scores_answerable: Sequence[float], scores_unanswerable: Sequence[float]
) -> float:
    """The `threshold_sweep` threshold with the highest decision accuracy.

    Ties go to the lowest threshold, i.e. the one that abstains least: with
    equal accuracy we would rather answer. Raises ValueError with no scores.

    >>> best_threshold([0.7, 0.8, 0.9], [0.1, 0.3])
    0.5
    """
    points = threshold_sweep(scores_answerable, scores_unanswerable)
    if not points:
        raise ValueError("best_threshold needs at least one confidence score")
    best = max(points, key=lambda p: (p.accuracy, -p.threshold))
    return best.threshold


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD exact match: 1.0 when the prediction equals a gold answer, after SQuAD's
    normalisation (case, punctuation and "a/an/the" ignored).

    >>> exact_match("The Eiffel Tower", ["Eiffel Tower"]), exact_match("two", ["2"])
    (1.0, 0.0)
    """
    p = _f1_tokens(prediction)
    return float(bool(p) and any(p == _f1_tokens(a) for a in answers))


_CONTENT_STOP_WORDS = """a an the and or but of at by for with to from in on is are was
were be been has have had it its this that as which who what said says will would"""
_CONTENT_STOP = frozenset(_CONTENT_STOP_WORDS.split())


def shares_evidence(text: str, evidence: str, share: float = 0.5) -> bool:
    """Whether `text` holds at least `share` of the content words of `evidence`.

    The strict answer test: a passage or quote that holds the gold answer string may still
    be about something else ("Russia" is in many articles); holding most of the gold
    evidence sentence's words says it is the same statement.

    >>> shares_evidence("Officials said the cigarettes will carry warnings.",
    ...                 "Every cigarette will carry a warning, officials said.")
    False
    >>> shares_evidence("Every cigarette will now carry a warning.", "Cigarette will carry warning")
    True
    """
    want = {t for t in normalize(evidence).split() if t not in _CONTENT_STOP}
    if not want:
        return True
    have = set(normalize(text).split())
    return len(want & have) / len(want) >= share


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when n is 0.

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
