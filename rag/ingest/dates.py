"""Dates in questions and in citations."""

from __future__ import annotations

import re
from datetime import datetime

_LATEST = re.compile(r"\b(latest|most recent|newest|recently|last|current(ly)?|now|today)\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(?:in|during|of|since)\s+((?:19|20)\d\d)\b")


def display_date(iso: str | None) -> str:
    """ "2024-11-26T19:23:00+05:30" -> "26 Nov 2024"; unparseable dates are shown as given.

    >>> display_date("2024-11-26T19:23:00+05:30"), display_date(None)
    ('26 Nov 2024', '')
    """
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%-d %b %Y")
    except ValueError:
        return iso


def wants_latest(question: str) -> bool:
    """True when the question asks for the newest information.

    >>> wants_latest("What is the latest on the strikes?"), wants_latest("Who fired?")
    (True, False)
    """
    return bool(_LATEST.search(question))


def year_range(question: str) -> tuple[str, str] | None:
    """An explicit year in the question, as an inclusive (after, before) filter.

    >>> year_range("What happened in 2023?")
    ('2023', '2023')
    """
    m = _YEAR.search(question)
    return (m.group(1), m.group(1)) if m else None
