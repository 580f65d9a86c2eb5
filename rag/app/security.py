"""Where the app may listen, who may log in, and what an uploaded file may be called.

Pure functions, no Gradio: the CLI checks these before anything heavy is imported.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path

from rag.errors import InputError

# Uploads larger than this are refused (a news article is a few KB; 20 MB leaves room for a
# JSONL file of a few thousand articles).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")
_MAX_NAME = 120  # characters kept of an uploaded file's name (file systems allow 255 bytes)


def is_local(host: str) -> bool:
    """Whether `host` is a loopback address (only this machine can connect).

    >>> is_local("127.0.0.1"), is_local("localhost"), is_local("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """RAG_AUTH "user:password" as Gradio's `auth`; None when unset.

    >>> parse_auth("ann:s3cret:x"), parse_auth("")
    (('ann', 's3cret:x'), None)
    """
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("RAG_AUTH must look like user:password (both non-empty)")
    return user, password


def check_host(host: str, auth: tuple[str, str] | None, allow_remote: bool) -> None:
    """Raise unless `host` is local, or a password is set, or the risk was accepted."""
    if is_local(host) or auth or allow_remote:
        return
    raise InputError(
        f"refusing to listen on {host} without a password: anyone who can reach this machine "
        "could read your articles and change the index. Set RAG_AUTH=user:password, or pass "
        "--allow-remote to accept that risk, or use --host 127.0.0.1")


def safe_name(name: str) -> str | None:
    """An uploaded file's name reduced to a plain file name; None if nothing usable is left.

    >>> safe_name("../../etc/passwd.txt"), safe_name("C:\\\\x\\\\a<b>.md"), safe_name("..")
    ('passwd.txt', 'a_b_.md', None)
    """
    base = re.split(r"[\\/]", name)[-1]
    base = _UNSAFE_NAME.sub("_", base).strip(" .")
    if not base or set(base) <= {"_", "."}:
        return None
    stem, dot, suffix = base.rpartition(".")
    if dot and len(base) > _MAX_NAME:
        base = stem[: _MAX_NAME - 1 - len(suffix)] + "." + suffix
    return base[:_MAX_NAME]


def browser_secret(index_dir: Path) -> str:
    """The key that encrypts the conversations each browser keeps, stored with the index
    (readable by its owner only) so that they survive a restart of the app."""
    from rag.index.rebuild import BROWSER_SECRET  # a rebuild carries the file over

    path = index_dir / BROWSER_SECRET
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    index_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key)
    return key
