"""The index folder on disk: the writer's lock, the manifest, atomic writes, the count of
articles a write expects (its progress bar is `rag.index.progress`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.errors import IndexLockedError, IndexWriteError
from rag.faults import checkpoint
from rag.index.progress import Progress as Progress  # where the writers import it from


class WriteLock:
    """An exclusive lock on the index folder; a second writer waits, then fails clearly."""

    def __init__(self, path: Path, timeout: float) -> None:
        from filelock import FileLock

        self.lock = FileLock(str(path / ".write.lock"))
        self.path = path
        self.timeout = timeout

    def __enter__(self) -> WriteLock:
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=self.timeout)
        except Timeout as e:
            raise IndexLockedError(
                f"another process is writing to the index at {self.path}; wait for it to "
                "finish and run the command again") from e
        except OSError as e:
            raise IndexWriteError(f"cannot lock {self.path} ({e}); the index folder must be "
                                  "writable to update it") from e
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def clean_staging(path: Path) -> None:
    """Remove what a killed `--rebuild` of `path` left beside it (`NAME.rebuild/`); the
    caller holds the write lock, so no rebuild is running. Never a staged folder that a
    swap intent names: that one is the new index, for the next open to swap in."""
    path = path.absolute()
    staged = path.with_name(path.name + ".rebuild")
    if staged.is_dir() and not path.with_name(path.name + ".swap").exists():
        shutil.rmtree(staged, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "manifest.json").read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def modified_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    checkpoint("manifest_swap")
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def is_under(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def count_items(roots: Sequence[Path], *, follow_links: bool = False) -> int:
    """Articles to expect: one per file, one per line of a JSONL file, one per skipped entry
    (for the progress bar). Walks as `iter_articles` does, so nothing here can fail."""
    from rag.ingest.articles import iter_files

    n = 0
    for item in iter_files(roots, follow_links=follow_links):
        if isinstance(item, tuple) and item[0].suffix.lower() == ".jsonl":
            try:
                with open(item[0], "rb") as fh:
                    n += max(1, sum(1 for line in fh if line.strip()))
            except OSError:
                n += 1
        else:
            n += 1
    return n
