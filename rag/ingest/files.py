"""Which files an index reads: folders walked in sorted order (hidden entries ignored),
and for every entry that cannot be read the reason (`Skipped`). Nothing here raises for
one bad entry: a non-UTF-8 name, a link loop or a permission costs that entry only."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InputError


@dataclass(frozen=True)
class Skipped:
    """A file, folder or JSON record that was not indexed, and why.

    `path` is what to show ("file.jsonl:7" for a line); `file` is the file or folder it
    belongs to, so a sync knows which stored articles it must keep (never parse `path`:
    a folder may be called "2024:news")."""

    path: str
    reason: str
    file: str = field(default="", compare=False)  # where it was found, not what it is

    @property
    def source(self) -> str:
        """The file or folder that could not be (fully) read."""
        return self.file or self.path


def iter_files(paths: Iterable[str | os.PathLike[str]], *,
               follow_links: bool = False) -> Iterator[tuple[Path, str] | Skipped]:
    """(file, its name relative to its root) for every file `iter_articles` would read, in
    the same order, or a `Skipped`: lets another process parse them (`articles_in_file`).
    Raises `InputError` at once for a path that does not exist."""
    if isinstance(paths, (str, os.PathLike)):  # a lone path, not an iterable of characters
        paths = [paths]
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise InputError(f"No such file or folder: '{root}' (resolved from {Path.cwd()}). "
                             "Check the spelling, or give the folder that holds your articles.")
    return _iter_roots(roots, follow_links)


def _iter_roots(roots: list[Path], follow_links: bool) -> Iterator[tuple[Path, str] | Skipped]:
    for root in roots:
        if root.is_dir():
            real = os.path.realpath(root)
            yield from _iter_folder(root, _Walk(root, real, follow_links, {real}))
        elif root.is_file():
            yield root.absolute(), root.name
        else:
            yield Skipped(shown(root), "not a regular file or folder")


@dataclass
class _Walk:
    base: Path  # the folder argument (ids are relative to it)
    real: str  # its real path: links leading out of it are not followed by default
    follow_links: bool
    seen: set[str]  # real paths of folders walked (followed links can loop)


def shown(path: Path | str) -> str:
    """A path as text that can always be printed and stored (undecodable bytes as \\xNN)."""
    return os.fsencode(os.path.abspath(path)).decode("utf-8", "backslashreplace")


def _iter_folder(folder: Path, walk: _Walk) -> Iterator[tuple[Path, str] | Skipped]:
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        yield Skipped(shown(folder), f"cannot read folder ({e.strerror or e})")
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            kind = _classify(entry, walk)
        except OSError as e:  # a link loop, a vanished entry, a permission: this entry only
            kind = f"cannot read ({e.strerror or e})"
        if kind == "folder":
            yield from _iter_folder(path, walk)
        elif kind == "file":
            yield path.absolute(), path.relative_to(walk.base).as_posix()
        else:
            yield Skipped(shown(path), kind)


def _classify(entry: os.DirEntry[str], walk: _Walk) -> str:
    """"folder", "file", or the reason the entry is skipped."""
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8; rename it (for example with convmv)"
    if entry.is_dir(follow_symlinks=False):
        return "folder"
    if not entry.is_symlink():
        return "file" if entry.is_file(follow_symlinks=False) else \
            "not a regular file (a device, socket or pipe?)"
    target = os.path.realpath(entry.path)
    os.stat(entry.path)  # raises for a loop or a broken link: the reason says which
    inside = target == walk.real or target.startswith(walk.real.rstrip(os.sep) + os.sep)
    if not inside and not walk.follow_links:
        return (f"symbolic link to {shown(target)}, outside {shown(walk.base)}; not followed "
                "(pass --follow-links to index it)")
    if entry.is_dir():
        if not walk.follow_links:
            return "symlinked folder not followed; pass it directly or use --follow-links"
        if target in walk.seen:
            return "folder already indexed through another path (a link loop?)"
        walk.seen.add(target)
        return "folder"
    return "file" if entry.is_file() else "not a regular file (a device, socket or pipe?)"


__all__ = ["Skipped", "iter_files", "shown"]
