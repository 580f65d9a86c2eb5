"""Sentence spans: where each sentence of a text starts and ends.

Spans are character offsets into the text given, so a sentence can be quoted
exactly (`text[start:end]`) and highlighted later.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before
# whitespace, or at a line break. Abbreviations and initials are handled below.
_END = re.compile(r"""[.!?…]+["'”’»)\]]*(?=\s)|\n+""")
_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "col", "lt", "sgt", "capt",
    "gov", "sen", "rep", "pres", "rev", "hon", "no", "vs", "etc", "inc", "ltd", "co", "corp",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m", "approx", "dept", "est", "fig", "al",
}


def _is_false_end(text: str, end: int) -> bool:
    """True when the period ending at `end` belongs to an abbreviation or initial."""
    if text[end - 1] != ".":
        return False
    word = re.search(r"([A-Za-z][A-Za-z.]*)\.$", text[max(0, end - 12):end])
    if not word:
        return False
    token = word.group(1).lower()
    if token in _ABBREV or len(token) == 1:
        return True
    # "U.S." style: letters separated by periods.
    if re.fullmatch(r"(?:[a-z]\.)+[a-z]", token):
        nxt = re.match(r"\s+(\S)", text[end:])
        # "the U.S. The next..." ends a sentence only when a capital follows a long gap;
        # news writes "U.S. official" far more often, so keep going on a lowercase word.
        return bool(nxt and not nxt.group(1).isupper())
    return False


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split `text` into sentence spans, trimmed of surrounding whitespace.

    >>> t = "Two were intercepted. The U.S. official said so.\\nNext line"
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['Two were intercepted.', 'The U.S. official said so.', 'Next line']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end() if m.group(0)[0] != "\n" else m.start()
        if m.group(0)[0] != "\n" and _is_false_end(text, m.end()):
            continue
        _append(text, start, end, spans)
        start = m.end()
    _append(text, start, len(text), spans)
    return spans


def _append(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))
