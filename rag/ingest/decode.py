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

    Decoding: a BOM (UTF-8/16/32) wins; then UTF-16 without a BOM where the NUL bytes say
    so (`_utf16_unmarked`); then strict UTF-8; then UTF-8 with replacement characters if
    the file is mostly valid UTF-8 with a few broken bytes; then cp1252, then latin-1
    (which never fails). Newlines become \\n; zero-width, bidi-control and other
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
        wide = _utf16_unmarked(data) if b"\x00" in data else None
        if wide is not None:
            text = wide
        elif b"\x00" in data:
            raise Unreadable("binary file (NUL bytes); if it is text, its encoding could not "
                             "be told: save it as UTF-8")
        elif len(data[:65536].translate(None, _NOT_CONTROL)) * 10 > len(data[:65536]):
            raise Unreadable("binary file (mostly non-text bytes)")
        else:
            text = _decode_unmarked(data)
    return _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _utf16_unmarked(data: bytes) -> str | None:
    """UTF-16 without a BOM, told by where its NUL bytes fall: text in Latin script is
    mostly ASCII, whose every other byte is NUL (odd offsets little-endian, even ones
    big-endian); binary data has NULs on both. None when that does not tell, or the bytes
    do not decode to text.

    >>> _utf16_unmarked("Caf\u00e9 news, 2024".encode("utf-16-le"))
    'Café news, 2024'
    >>> _utf16_unmarked(bytes([0, 0, 1, 0, 0, 7, 0, 0])) is None
    True
    """
    sample = data[:65536]
    if len(sample) % 2 and len(sample) == len(data):
        return None  # UTF-16 has an even number of bytes
    half = len(sample) // 2
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if odd >= 0.3 * half and even <= 0.02 * half:
        codec = "utf-16-le"
    elif even >= 0.3 * half and odd <= 0.02 * half:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for c in text[:32768] if ord(c) < 32 and c not in "\t\n\r")
    return None if controls * 100 > len(text[:32768]) else text


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
