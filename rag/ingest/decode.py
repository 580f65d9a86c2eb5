"""Decoding a file's bytes into clean text: any common encoding, no invisible characters."""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from rag.errors import InputError

# Zero-width and bidi-control characters are invisible and used for spoofing; C0/C1 controls
# (other than tab and newline) are never text. Everything else, accents included, is kept.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


class Unreadable(Exception):
    """These bytes are not text (or the file is not usable); the message is the reason."""


_CONTROL_BYTES = bytes([*range(0x09), *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_ASCII = bytes(range(128))
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a text file of any common encoding, cleaned for indexing.

    Decoding: a BOM (UTF-8/16/32) wins; then strict UTF-8; then UTF-8 with replacement
    characters if the file is mostly valid UTF-8 with a few broken bytes; then cp1252, then
    latin-1 (which never fails). Newlines become \\n; zero-width, bidi-control and other
    control characters are removed. Binary files raise `InputError`.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"Cannot read '{p}' ({e.strerror or e}); check the path and its "
                         "permissions.") from None
    try:
        return _decode(data)
    except Unreadable as e:
        raise InputError(f"'{p}' is not text: {e}. Remove it or give a text file.") from None


def _decode(data: bytes) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = data.decode(codec, errors="replace")
            break
    else:
        if b"\x00" in data:
            raise Unreadable("binary file (NUL bytes)")
        sample = data[:65536]
        if len(sample.translate(None, _NOT_CONTROL)) * 10 > len(sample):
            raise Unreadable("binary file (mostly non-text bytes)")
        text = _decode_unmarked(data)
    return _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _decode_unmarked(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    loose = data.decode("utf-8", errors="replace")
    bad = loose.count("\ufffd") - data.count("\ufffd".encode())
    ascii_bytes = len(data) - len(data.translate(None, _ASCII))
    valid_multibyte = len(loose) - ascii_bytes - bad
    if valid_multibyte >= bad:  # UTF-8 with a few broken bytes: keep the rest right
        return loose
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes are undefined in cp1252; latin-1 never fails
        return data.decode("latin-1")
