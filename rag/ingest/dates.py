"""Dates in questions and in citations."""

from __future__ import annotations

import re
from datetime import date, datetime

from rag.errors import InputError

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


def year_range(question: str) -> tuple[str, str] | None:
    """An explicit year in the question, as an inclusive (after, before) filter.

    >>> year_range("What happened in 2023?")
    ('2023', '2023')
    """
    m = _YEAR.search(question)
    return (m.group(1), m.group(1)) if m else None


_AS_OF = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


def as_of_date(value: str | None) -> str:
    """An as-of date as ISO `YYYY-MM-DD`; None means today. Accepts `2023/06/01` too.

    >>> as_of_date("2023/06/01"), as_of_date("2023-6-1T10:00")
    ('2023-06-01', '2023-06-01')
    """
    if value is None or not str(value).strip():
        return date.today().isoformat()
    m = _AS_OF.match(str(value))
    try:
        if not m:
            raise ValueError(value)
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        raise InputError(f"as-of date {value!r} is not a date; write it as YYYY-MM-DD, "
                         "e.g. 2023-06-01") from None


def age_days(published: str | None, as_of: str) -> float | None:
    """Days from an article's publication to the as-of date; None when undated or unparseable.

    >>> age_days("2023-05-25T08:00:00+00:00", "2023-06-01"), age_days(None, "2023-06-01")
    (7.0, None)
    """
    if not published:
        return None
    m = _AS_OF.match(published)
    if not m:
        return None
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return float((date.fromisoformat(as_of) - day).days)
