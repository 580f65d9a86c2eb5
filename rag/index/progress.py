"""What an index write shows while it works, and the seconds each of its stages took.

`rag index` over 300 news articles runs for minutes, and one embedding batch alone can
take many seconds, so the bar is redrawn by a ticker thread, not by the work: on a
terminal one line rewritten at least once a second (articles and chunks per second, the
ETA, what it is doing now); in a log or a pipe a plain line every few seconds, plus the
first and the last article. A UI passes a callback instead (one call per article), and
`progress=False` shows nothing. Rates and the ETA are averages since the bar started.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TextIO, TypeVar

T = TypeVar("T")
_END = object()

TICK_S = 0.5  # a terminal's bar is redrawn this often (issue 25: at least once a second)
LINE_EVERY_S = 5.0  # a log gets a line this often while the work goes on


@dataclass(frozen=True)
class Display:
    """Where and how often the bar is drawn; `progress=True` is `Display()`. `stream`:
    default stderr; `tty`: default whether the stream is a terminal (a bar redrawn in
    place) or not (plain lines); `every`: seconds between redraws, default `TICK_S` on a
    terminal and `LINE_EVERY_S` elsewhere; `clock`: what rates and the ETA are timed by."""

    stream: TextIO | None = None
    tty: bool | None = None
    every: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)


# True: a bar on stderr; a callable: called with (articles done, articles expected, name).
Progress = bool | Display | Callable[[int, int, str], None]


@dataclass(frozen=True)
class Stages:
    """Seconds an index write spent in each stage; they add up to its whole time. With a
    `Pipeline` (Ray) the reading and embedding done elsewhere count as `read`."""

    read: float = 0.0  # walking the folders, reading and chunking, deciding what changed
    embed: float = 0.0  # inside the embedder (chunks, and sentences where the index stores them)
    store: float = 0.0  # the SQLite transaction: rows written, the commit
    derived: float = 0.0  # the search files: FAISS and BM25, the manifest

    def __add__(self, other: Stages) -> Stages:
        return Stages(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def summary(self) -> str:
        """
        >>> Stages(12.06, 610.2, 15.3, 6.4).summary()
        'read/chunk 12.1 s, embed 610.2 s, store 15.3 s, search files 6.4 s'
        """
        return (f"read/chunk {self.read:.1f} s, embed {self.embed:.1f} s, "
                f"store {self.store:.1f} s, search files {self.derived:.1f} s")


def clock_time(seconds: float) -> str:
    """`seconds` as m:ss, or h:mm:ss from an hour.

    >>> clock_time(90), clock_time(3725.2)
    ('1:30', '1:02:05')
    """
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status(done: int, total: int, chunks: int, elapsed: float, doing: str = "") -> str:
    """The figures a progress line shows: articles, rates, ETA, time so far, what now.

    >>> status(120, 300, 2400, 60.0, "embedding 128 chunks")
    '120 of 300 articles (40%), 2.0 articles/s, 40.0 chunks/s, ETA 1:30, 1:00 so far; embedding 128 chunks'
    >>> status(0, 300, 0, 3.0)
    '0 of 300 articles (0%), ETA unknown, 0:03 so far'
    """
    parts = [f"{done} of {total} articles ({100 * done // max(total, 1)}%)"]
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate > 0:
        parts += [f"{rate:.1f} articles/s", f"{chunks / elapsed:.1f} chunks/s",
                  f"ETA {clock_time(max(total - done, 0) / rate)}"]
    else:
        parts.append("ETA unknown")
    parts.append(f"{clock_time(elapsed)} so far")
    return ", ".join(parts) + (f"; {doing}" if doing else "")


def bar_line(done: int, total: int, chunks: int, elapsed: float, doing: str,
             width: int) -> str:
    """`status` as a terminal's bar of at most `width - 1` characters (what the work is
    doing comes last: a narrow terminal loses it first).

    >>> bar_line(120, 300, 2400, 60.0, "embedding 128 chunks", 100)
    '[####      ] 120/300 articles, 2.0/s, 40.0 chunks/s, ETA 1:30, 1:00 so far; embedding 128 chunks'
    >>> bar_line(0, 300, 0, 3.0, "embedding 128 chunks", 60)
    '[          ] 0/300 articles, ETA unknown, 0:03 so far; emb…'
    """
    filled = 10 * min(done, total) // max(total, 1)
    parts = [f"[{'#' * filled}{' ' * (10 - filled)}] {done}/{total} articles"]
    if done and elapsed > 0:
        rate = done / elapsed
        parts += [f"{rate:.1f}/s", f"{chunks / elapsed:.1f} chunks/s",
                  f"ETA {clock_time(max(total - done, 0) / rate)}"]
    else:
        parts.append("ETA unknown")
    parts.append(f"{clock_time(elapsed)} so far")
    line = ", ".join(parts) + (f"; {doing}" if doing else "")
    room = max(width - 1, 20)
    return line if len(line) <= room else line[:room - 1] + "…"


class ProgressBar:
    """The progress of one index write: `step` once per article done (with its chunks),
    `doing` says what the work is at now, `close` at the end. Draws as `progress` says
    (see the module's docstring)."""

    def __init__(self, progress: Progress, total: int = 0, doing: str = "") -> None:
        self.total, self.done, self.chunks = total, 0, 0
        self.now = doing  # what the work is doing, shown after the figures
        self.callback = progress if callable(progress) else None
        display = Display() if progress is True else progress \
            if isinstance(progress, Display) else None
        self.stream: TextIO | None = None
        self.tty, self.every = False, LINE_EVERY_S
        self._stop = threading.Event()
        self._draw_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._clock: Callable[[], float] = time.monotonic
        self._drawn = False
        if display is not None:
            self.stream = display.stream or sys.stderr
            self.tty = display.tty if display.tty is not None else _isatty(self.stream)
            self.every = display.every or (TICK_S if self.tty else LINE_EVERY_S)
            self._clock = display.clock
            self._ticker = threading.Thread(target=self._tick, name="rag-progress",
                                            daemon=True)
        self._start = self._clock()
        if self._ticker is not None:
            self._ticker.start()

    def doing(self, what: str) -> None:
        """Say what the work is at now (shown at the next redraw)."""
        self.now = what

    def step(self, name: str, chunks: int = 0) -> None:
        """One article done (embedded, unchanged or skipped), with its `chunks` embedded."""
        self.chunks += chunks
        if self.done >= self.total:  # a JSON file holding a list: more items than counted
            return
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total, name)
        if self.stream is not None and not self.tty and self.done in (1, self.total):
            self.draw()  # a log always shows the first and the last article

    def line(self) -> str:
        """The figures as a progress line shows them now."""
        return status(self.done, self.total, self.chunks, self._clock() - self._start, self.now)

    def draw(self) -> None:
        """Redraw the bar (a terminal) or write one line (a log)."""
        if self.stream is None:
            return
        with self._draw_lock:
            try:
                if self.tty:
                    width = shutil.get_terminal_size((100, 24)).columns
                    elapsed = self._clock() - self._start
                    self.stream.write("\r" + bar_line(self.done, self.total, self.chunks, elapsed,
                                                      self.now, width) + "\x1b[K")
                else:
                    self.stream.write(f"indexing: {self.line()}\n")
                self.stream.flush()
                self._drawn = True
            except (OSError, ValueError):  # a closed or broken stream: stop drawing
                self.stream = None

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self.draw()

    def close(self) -> None:
        """Stop the ticker; a terminal's bar is erased (the summary follows it)."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        if self.stream is not None and self.tty and self._drawn:
            with self._draw_lock:
                try:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass


def timed(items: Iterator[T], spent: list[float]) -> Iterator[T]:
    """`items`, adding the seconds spent making each to `spent[0]` (a consumer's own time
    is the rest of its time).

    >>> spent = [0.0]
    >>> list(timed(iter([1, 2]), spent)), spent[0] < 1.0
    ([1, 2], True)
    """
    while True:
        t = time.perf_counter()
        item = next(items, _END)
        spent[0] += time.perf_counter() - t
        if item is _END:
            return
        yield item  # type: ignore[misc]


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["LINE_EVERY_S", "TICK_S", "Display", "Progress", "ProgressBar", "Stages", "status",
           "timed"]
