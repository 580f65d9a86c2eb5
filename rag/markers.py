"""The `[n]` citation markers in answer text: written, found and stripped in one place.

    >>> cite(2)
    '[2]'
    >>> strip_markers("Two were intercepted [1]. Moscow denied it [2, 3].")
    'Two were intercepted. Moscow denied it.'
    >>> [cited(m) for m in MARKER.finditer("a [1-3] b [Source 4]")]
    [[1, 2, 3], [4]]
"""

from __future__ import annotations

import re

# LLMs write "[1]", "[1, 3]", "[1-2]" and "[Source 2]"; "[1][2]" is two markers.
REF = r"\[(?:(?:sources?|refs?)\s*:?\s*)?(\d+(?:\s*[,–-]\s*\d+)*)\]"
MARKER = re.compile(REF, re.IGNORECASE)
_MARKER_AND_SPACE = re.compile(rf"\s*{REF}", re.IGNORECASE)
_RANGE_LIMIT = 50  # "[1-9999]" is not a citation of 9,999 passages


def cite(n: int) -> str:
    """The marker for citation `n`."""
    return f"[{n}]"


def cited(match: re.Match[str]) -> list[int]:
    """The citation numbers one marker names, ranges expanded."""
    out: list[int] = []
    for part in match.group(1).split(","):
        lo, _, hi = part.replace("–", "-").partition("-")
        a = int(lo)
        b = int(hi) if hi.strip() else a
        out.extend(range(a, min(b, a + _RANGE_LIMIT) + 1) if b >= a else [a])
    return out


def strip_markers(text: str) -> str:
    """`text` without its citation markers (and the space before each)."""
    return _MARKER_AND_SPACE.sub("", text)
