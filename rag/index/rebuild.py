"""`rag index --rebuild`: a new index built beside the old one, then swapped in whole.

The rebuild holds the old folder's write lock from start to end, so no writer commits to
an index about to be replaced. The new folder (`NAME.rebuild`) gets the articles asked
for plus the app's uploads that the old index holds (with their files), and the vector
cache moves along so a killed rebuild resumes; the next write removes what a killed one
left (`folder.clean_staging`). The swap is one atomic `renameat2(RENAME_EXCHANGE)` where the OS
has it; elsewhere an intent file is written first and the two renames it names are
completed by the next open, so every instant shows the old index or the new one.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from rag.embed.cache import CACHE_FILE
from rag.faults import checkpoint
from rag.index.folder import Progress, WriteLock, write_json_atomic
from rag.index.reads import Reads
from rag.index.sentences import recorded
from rag.index.store import Store
from rag.index.uploads import held_uploads
from rag.index.writer import UPLOAD_NAMESPACE, IndexReport, Pipeline, add
from rag.ingest.files import Skipped

R = TypeVar("R", bound=Reads)

_RENAME_EXCHANGE = 2  # linux/fs.h
# A file the app keeps in the index folder (rag.app.security.browser_secret): carried over.
BROWSER_SECRET = "browser-secret"
_AT_FDCWD = -100


def staging(target: Path) -> Path:
    return target.with_name(target.name + ".rebuild")


def _intent(target: Path) -> Path:
    return target.with_name(target.name + ".swap")


def _old(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def rebuild(paths: Iterable[str | os.PathLike[str]], target: Path,
            open_index: Callable[[Path, bool | None], R], *,
            progress: Progress, follow_links: bool, lock_timeout: float,
            pipeline: Pipeline | None = None,
            sentences: bool | None = None) -> tuple[R, IndexReport]:
    """Build `target` afresh from `paths` (and its uploads) and swap it in. `open_index`
    opens an index folder, creating it if need be, with a `sentences` choice (`Index.open`
    with the rebuild's model, chunking and kind). `sentences`: whether the new index
    stores sentence vectors; None: as the old one does."""
    paths = list(paths)
    complete_swap(target)
    if not (target / "store.sqlite").exists():  # nothing to replace: build in place
        idx = open_index(target, sentences)
        return idx, add(idx, paths, progress=progress, follow_links=follow_links,
                        pipeline=pipeline)
    new_dir = staging(target)
    with WriteLock(target, timeout=lock_timeout):
        shutil.rmtree(new_dir, ignore_errors=True)  # a killed rebuild's leftovers
        if sentences is None:
            old = Store(target / "store.sqlite", readonly=True)
            try:
                sentences = recorded(old.meta())
            finally:
                old.close()
        try:
            report = _build(paths, target, new_dir, open_index(new_dir, sentences),
                            progress=progress, follow_links=follow_links, pipeline=pipeline)
            swap(target, new_dir)
        except BaseException:
            if not _intent(target).exists():  # else the staged folder is the new index
                shutil.rmtree(new_dir, ignore_errors=True)
            raise
        shutil.rmtree(new_dir, ignore_errors=True)  # the old index, after the exchange
    return open_index(target, None), report


def _build(paths: list[str | os.PathLike[str]], target: Path, new_dir: Path, idx: Reads, *,
           progress: Progress, follow_links: bool, pipeline: Pipeline | None) -> IndexReport:
    """Index `paths` and the uploads of `target` into `idx`, the index opened at `new_dir`
    (closed here), and carry over the vector cache and the browser key."""
    idx.cache_path = target / CACHE_FILE  # a killed rebuild's work is reused
    try:
        report = add(idx, paths, progress=progress, follow_links=follow_links,
                     pipeline=pipeline)
        uploads = target / "uploads"
        if uploads.is_dir():
            # The uploads the old index holds, indexed where they will be after the swap,
            # then copied along. A file it does not hold (a killed upload's) stays behind.
            held = held_uploads(target)
            files = sorted(f for f in uploads.iterdir() if f.is_file() and f.resolve() in held)
            left = [Skipped(str(f), "in the upload folder but not in the index (an upload "
                            "that was interrupted?); not carried over: upload it again")
                    for f in sorted(uploads.iterdir())
                    if f.is_file() and not f.name.startswith(".") and f.resolve() not in held]
            up = add(idx, files, progress=False, namespace=UPLOAD_NAMESPACE)
            (new_dir / "uploads").mkdir()
            for f in files:
                shutil.copy2(f, new_dir / "uploads" / f.name)
            report = IndexReport(
                added=report.added + up.added, updated=report.updated, removed=0,
                unchanged=report.unchanged, skipped=report.skipped + up.skipped + tuple(left),
                chunks_added=report.chunks_added + up.chunks_added, articles=up.articles,
                chunks=up.chunks, seconds=report.seconds + up.seconds,
                embedded=report.embedded + up.embedded, reused=report.reused + up.reused,
                stages=report.stages + up.stages)
    finally:
        idx.close()
    for suffix in ("", "-wal", "-shm"):  # the cache goes with the index that uses it
        src = target / (CACHE_FILE + suffix)
        if src.exists():
            os.replace(src, new_dir / (CACHE_FILE + suffix))
    # The app's key to the conversations kept in browsers: without it they cannot be read.
    if (target / BROWSER_SECRET).exists():
        shutil.copy2(target / BROWSER_SECRET, new_dir / BROWSER_SECRET)
    return report


def swap(target: Path, new_dir: Path) -> None:
    """Put `new_dir` at `target` (and the old index at `new_dir`) in one step, or record
    the intent and do it in two (completed by the next open if killed between)."""
    checkpoint("rebuild_swap")
    if _exchange(new_dir, target):
        return
    write_json_atomic(_intent(target), {"new": new_dir.name, "old": _old(target).name})
    complete_swap(target)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: this OS or filesystem cannot
        return False
    raise OSError(err, f"cannot swap {b} for its rebuilt copy: {os.strerror(err)}")


def complete_swap_pending(target: Path) -> bool:
    """Whether a rebuild left a swap for the next open to complete."""
    return _intent(target).exists()


def complete_swap(target: Path) -> None:
    """Finish a two-step swap that a killed rebuild recorded; nothing if none is pending.
    The intent is written only once the staged index is complete."""
    intent = _intent(target)
    if not intent.exists():
        return
    new_dir, old = staging(target), _old(target)
    if new_dir.exists():
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        checkpoint("rebuild_swap_half")
        os.replace(new_dir, target)
    shutil.rmtree(old, ignore_errors=True)
    intent.unlink(missing_ok=True)


__all__ = ["complete_swap", "complete_swap_pending", "rebuild", "staging", "swap"]
