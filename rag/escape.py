"""Names made printable: a path, title or id comes from files, and a file name may hold a
newline or a terminal escape. Printed raw, `x.txt: empty file⏎error: index corrupted`
forges a whole line of output; escaped it stays one visible name on its line.

Used wherever a path, title or id is printed: the `rag` command, the app's logs and
Markdown, error messages. (Article text keeps its lines: `rag.terminal.safe`.)
"""

from __future__ import annotations

import re

# C0 and C1 controls (newline and tab included), DEL, the line and paragraph separators,
# zero-width and bidi controls (which reorder what a terminal shows).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e"
                          "\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """`text` on one line, every control character written as an escape.

    >>> printable("x.txt: empty file\\nerror: index corrupted")
    'x.txt: empty file\\\\nerror: index corrupted'
    >>> printable("red\\x1b[31m \\u202eevil")
    'red\\\\x1b[31m \\\\u202eevil'
    """
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


__all__ = ["printable"]
