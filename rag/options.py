"""The options shared by search and answers: one frozen filter type and the mode names.

    >>> Filters(published_after="2024-01-01").active
    True
    >>> Filters().active
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SearchMode = Literal["hybrid", "dense", "lexical"]
AnswerMode = Literal["extractive", "llm"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
ANSWER_MODES: tuple[AnswerMode, ...] = get_args(AnswerMode)

# The one length limit for a question or search query, everywhere it is read (CLI, chat box,
# API): a long paragraph. Past it a "question" is a pasted article; the embedder would see
# only its first 256 word pieces anyway, and BM25 would score every word of it.
MAX_QUERY_CHARS = 2000


@dataclass(frozen=True)
class Filters:
    """Which articles a search or an answer may draw on.

    Dates are ISO prefixes (`2024`, `2024-06`, `2024-06-01`), compared with the articles'
    published dates; undated articles pass date filters. `sources` keeps articles whose
    source is one of these names.
    """

    published_after: str | None = None
    published_before: str | None = None
    sources: tuple[str, ...] | None = None
    # The date the question is asked at (ISO `2023-06-01`): articles published after it are
    # not used (undated ones are), and nearer articles are mildly preferred. None: no
    # as-of date (the answerer treats None as today).
    as_of: str | None = None

    @property
    def active(self) -> bool:
        """True when any filter narrows the articles."""
        return bool(self.published_after or self.published_before or self.sources)
