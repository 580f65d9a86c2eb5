"""The app's uploads: copied into `INDEX/uploads/` and indexed as one step, under the lock.

An upload refused because another process holds the write lock leaves nothing behind:
the files are copied in only once the lock is held. An upload that fails, or whose file
gives no new article, is undone before the lock is released: a new file is deleted, a
replaced one gets its earlier content back. A rebuild carries over only the upload files
the old index holds (`held_uploads`), so a file that a killed process left in the folder
is reported, never indexed silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from rag.index.folder import Progress, WriteLock
from rag.index.reads import Reads
from rag.index.store import Store
from rag.index.sync import UPLOAD_NAMESPACE
from rag.index.writer import IndexReport, add_locked

_BACKUP = ".before-upload"  # a hidden name: never indexed, never carried by a rebuild


def add_uploads(index: Reads, files: Mapping[Path, Path], *, progress: Progress = False,
                lock_timeout: float = 10.0) -> tuple[IndexReport, set[Path]]:
    """Copy each source file to its (resolved) target in the upload folder and index the
    targets (ids `upload:NAME`), all under the write lock. Returns the report and the
    targets undone: those that gave no new article (a new file is deleted, a replaced one
    gets its earlier content back, so the folder keeps matching the index). Raises
    `IndexLockedError` with nothing copied when another process holds the lock."""
    with WriteLock(index.path, timeout=lock_timeout):
        before = _uploaded(index.path)
        backups: dict[Path, Path | None] = {}
        try:
            for target, src in files.items():
                backup = target.with_name(f".{target.name}{_BACKUP}")
                backups[target] = backup if target.exists() else None
                if target.exists():
                    shutil.copy2(target, backup)
                shutil.copyfile(src, target)
            report = add_locked(index, list(files), progress=progress,
                                namespace=UPLOAD_NAMESPACE)
        except BaseException:
            _undo(backups)
            raise
        after = _uploaded(index.path)
        undone = {t for t in backups if not after.get(t, set()) - before.get(t, set())}
        _undo({t: b for t, b in backups.items() if t in undone})
        for target, kept in backups.items():
            if target not in undone and kept is not None:
                kept.unlink(missing_ok=True)
        return report, undone


def _undo(backups: Mapping[Path, Path | None]) -> None:
    for target, backup in backups.items():
        if backup is None:
            target.unlink(missing_ok=True)
        elif backup.exists():
            os.replace(backup, target)


def held_uploads(index_path: Path) -> set[Path]:
    """The files in `index_path/uploads/` that the index holds articles from (resolved)."""
    return set(_uploaded(index_path))


def _uploaded(index_path: Path) -> dict[Path, set[tuple[str, str]]]:
    """{file in the upload folder (resolved): {(id, content hash)} of its articles}."""
    uploads = os.path.realpath(index_path / "uploads")
    store = Store(index_path / "store.sqlite", readonly=not os.access(index_path, os.W_OK))
    try:
        paths, hashes = store.article_paths(), store.article_hashes()
    finally:
        store.close()
    out: dict[Path, set[tuple[str, str]]] = {}
    for aid, p in paths.items():
        if p and os.path.dirname(os.path.realpath(p)) == uploads:
            out.setdefault(Path(p).resolve(), set()).add((aid, hashes[aid]))
    return out


__all__ = ["add_uploads", "held_uploads"]
