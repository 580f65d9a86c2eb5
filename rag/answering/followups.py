"""Conversation context: turning a follow-up question into a standalone search query."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.markers import strip_markers

Turn = tuple[str, str]  # (user question, assistant answer)

_FOLLOW_UP = re.compile(
    r"\b(he|she|it|they|him|her|his|hers|its|their|them|this|that|these|those|there|"
    r"the same|the latter|the former|former|latter)\b|^(and|also|what about|how about|why|"
    r"when|where)\b", re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the conversation (pronouns, "what about", very short).

    >>> is_follow_up("How long does he have to leave?"), is_follow_up("Who expelled the diplomat?")
    (True, False)
    """
    words = re.findall(r"\w+", question)
    return bool(_FOLLOW_UP.search(question)) or len(words) <= 3


def contextual_query(question: str, history: Sequence[Turn] = (), *,
                     with_answer: bool = True) -> str:
    """The search query for `question` given earlier turns (most recent last).

    A follow-up is expanded with the previous question and the start of its answer, so
    "How long does he have to leave?" after a question about a diplomat searches for the
    diplomat. A standalone question is searched as asked.

    >>> contextual_query("How long does he have to leave?",
    ...                  [("Who expelled the British diplomat?", "Russia did [1].")])
    'How long does he have to leave? Who expelled the British diplomat? Russia did.'
    """
    if not history or not is_follow_up(question):
        return question
    prev_q, prev_a = history[-1]
    if not with_answer:
        return f"{question} {prev_q.strip()}"
    prev_a = strip_markers(prev_a or "")
    prev_a = re.sub(r"\s+", " ", prev_a).strip()
    if prev_a.lower().startswith("not in the articles"):
        prev_a = ""
    return " ".join(p for p in (question, prev_q.strip(), prev_a[:300]) if p)
