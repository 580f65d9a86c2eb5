"""What a sync removes: it makes the index equal to the folders it is given.

Every stored article that the run did not read is removed when it is known to be gone:
its file lies outside the folders given (a renamed or moved corpus folder, a folder no
longer indexed), or under them but deleted, or read without that article. Never removed:
the app's uploads (their own namespace), articles of a file or folder that could not be
read (permissions, a half-synced cloud file), and anything at all while a folder given is
empty: an unmounted drive looks like that.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rag.ingest.files import Skipped

# Uploads live in their own id namespace: an upload can never replace another source's
# article, a corpus article may not take an id in it, and a sync of the corpus keeps them.
UPLOAD_NAMESPACE = "upload:"


class SyncScope:
    """The folders a run reads, and what it learnt about them while reading."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = [str(r) for r in roots]
        self.files_read: set[str] = set()  # files that gave at least one article
        self.unreadable: set[str] = set()  # files/folders with a skip: their articles stay

    def under_roots(self, path: str) -> bool:
        return any(under(path, r) for r in self.roots)

    def removals(self, paths: Mapping[str, str | None], settled: set[str],
                 skipped: list[Skipped]) -> tuple[list[str], int]:
        """(ids to remove, number kept because they could not be checked) among the stored
        articles `paths` (id -> file) that are not `settled` (read, moved or renamed in
        this run). An empty folder given is reported in `skipped`."""
        empty = self.empty_roots(paths, skipped)
        gone: list[str] = []
        kept = 0
        for aid, apath in paths.items():
            if aid in settled or not apath or aid.startswith(UPLOAD_NAMESPACE):
                continue
            if empty and not self.under_roots(apath):
                kept += 1  # outside the folders given, but one of them looks unmounted
            elif not self.under_roots(apath) or (
                    self.known_gone(apath) and not any(under(apath, r) for r in empty)):
                gone.append(aid)
            else:
                kept += 1
        return gone, kept

    def known_gone(self, path: str) -> bool:
        """True only when the file was read without this article, or surely does not exist;
        never for a file or folder that could not be read."""
        p = os.path.abspath(path)
        parent = p
        while True:
            if parent in self.unreadable:
                return False
            up = os.path.dirname(parent)
            if up == parent:
                break
            parent = up
        if p in self.files_read:
            return True
        try:
            os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:  # a permission problem: not known to be gone
            return False
        return False  # there, but not read (nor reported): keep it

    def empty_roots(self, paths: Mapping[str, str | None], skipped: list[Skipped]) -> list[str]:
        """Folders given with nothing in them now while the index holds articles: an
        unmounted drive looks like this. Nothing is removed then; the user is told."""
        out = []
        for r in self.roots:
            try:
                empty = os.path.isdir(r) and not any(
                    not e.name.startswith(".") for e in os.scandir(r))
            except OSError:
                empty = True
            if empty and any(p and not aid.startswith(UPLOAD_NAMESPACE)
                             for aid, p in paths.items()):
                out.append(r)
                skipped.append(Skipped(os.path.abspath(r), "the folder is empty (an unmounted "
                                       "drive?); no indexed article is removed (remove them "
                                       "with --rebuild if that is meant)"))
        return out


def under(path: str, root: str) -> bool:
    """`path` is `root` or inside it, as spelled or after resolving links."""
    for a, b in ((os.path.abspath(path), os.path.abspath(root)),
                 (os.path.realpath(path), os.path.realpath(root))):
        if a == b or a.startswith(b.rstrip(os.sep) + os.sep):
            return True
    return False
