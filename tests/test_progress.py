"""The progress a user sees while `rag index` works (rag.index.progress): a bar redrawn
on a terminal while one slow batch embeds, plain lines every few seconds in a log, and
a summary that says where the seconds went."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from conftest import write
from fakes import FakeEmbedder

from rag import Index
from rag.cli import main
from rag.index.progress import Display, ProgressBar, Stages


class Slow(FakeEmbedder):
    """The boundary fake, as slow as a real model's batch: each call waits until `enough`
    says the bar has been redrawn meanwhile (or `limit` seconds pass), and counts the
    redraws it saw."""

    def __init__(self, stream: io.StringIO, mark: str, want: int = 3, limit: float = 20.0):
        super().__init__()
        self.stream, self.mark, self.want, self.limit = stream, mark, want, limit
        self.redraws: list[int] = []

    def embed(self, texts):
        before = self.stream.getvalue().count(self.mark)
        deadline = time.monotonic() + self.limit
        while (self.stream.getvalue().count(self.mark) - before < self.want
               and time.monotonic() < deadline):
            time.sleep(0.01)
        self.redraws.append(self.stream.getvalue().count(self.mark) - before)
        return super().embed(texts)


def corpus(folder: Path, n: int = 3) -> Path:
    for i in range(n):
        write(folder / f"a{i}.txt", f"Story {i}\n\nThe harbour ferry ran late on day {i}. "
              "Crews blamed the storm.")
    return folder


def test_a_terminal_bar_is_redrawn_while_one_batch_embeds(tmp_path: Path) -> None:
    out = io.StringIO()
    slow = Slow(out, "\r")
    idx = Index.build([corpus(tmp_path / "c")], tmp_path / "idx", embedder=slow,
                      progress=Display(stream=out, tty=True, every=0.02))
    assert idx.last_report is not None and idx.last_report.added == 3
    assert slow.redraws and min(slow.redraws) >= 3  # redrawn during the one embed call
    shown = out.getvalue()
    assert "\n" not in shown  # one line, rewritten in place
    during = [d for d in shown.split("\r") if "embedding 3 chunks" in d]
    assert during and all(re.match(r"\[ {10}\] 0/3 articles, ETA unknown, \d+:\d\d so far; "
                                   r"embedding 3 chunks\x1b\[K$", d) for d in during)
    assert shown.endswith("\r\x1b[K")  # erased at the end: the summary follows


def test_a_log_gets_a_plain_line_every_few_seconds(tmp_path: Path) -> None:
    out = io.StringIO()
    slow = Slow(out, "\n", want=2)
    Index.build([corpus(tmp_path / "c")], tmp_path / "idx", embedder=slow,
                progress=Display(stream=out, tty=False, every=0.02))
    assert slow.redraws and min(slow.redraws) >= 2
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert all(ln.startswith("indexing: ") for ln in lines)
    assert any(ln.endswith("; embedding 3 chunks") and " 0 of 3 articles" in ln for ln in lines)
    assert any(" 3 of 3 articles (100%)" in ln for ln in lines)  # the last article, always


def test_rates_and_eta_by_a_fake_clock() -> None:
    now = [100.0]
    out = io.StringIO()
    bar = ProgressBar(Display(stream=out, tty=False, every=3600, clock=lambda: now[0]), 12)
    try:
        assert bar.line() == "0 of 12 articles (0%), ETA unknown, 0:00 so far"
        bar.doing("embedding 30 chunks")
        for i in range(3):
            bar.step(f"a{i}", chunks=10)
        now[0] += 6.0
        assert bar.line() == ("3 of 12 articles (25%), 0.5 articles/s, 5.0 chunks/s, "
                              "ETA 0:18, 0:06 so far; embedding 30 chunks")
        assert out.getvalue() == "indexing: 1 of 12 articles (8%), ETA unknown, 0:00 so far; " \
            "embedding 30 chunks\n"  # the first article is always logged
    finally:
        bar.close()


def test_the_summary_gives_the_seconds_of_each_stage(tmp_path: Path, capsys) -> None:
    class Sleepy(FakeEmbedder):
        def embed(self, texts):
            time.sleep(0.3)
            return super().embed(texts)

    docs = corpus(tmp_path / "c", 4)
    idx = Index.build([docs], tmp_path / "idx", embedder=Sleepy(), progress=False)
    r = idx.last_report
    assert r is not None
    st = r.stages
    assert st.embed >= 0.3 and min(st.read, st.store, st.derived) >= 0
    assert abs(st.read + st.embed + st.store + st.derived - r.seconds) < 0.01
    write(docs / "new.txt", "New story\n\nA new ferry was ordered.")
    assert main(["index", str(docs), "--index", str(tmp_path / "idx"), "-q"],
                embedder=Sleepy()) == 0
    said = capsys.readouterr().out
    m = re.search(r"\((\d+\.\d) s: read/chunk (\d+\.\d) s, embed (\d+\.\d) s, store (\d+\.\d) s, "
                  r"search files (\d+\.\d) s\)", said)
    assert m, said
    assert float(m[3]) >= 0.3
    assert abs(sum(float(x) for x in m.groups()[1:]) - float(m[1])) <= 0.25  # rounding


def test_stages_add_up() -> None:
    assert Stages(1, 2, 3, 4) + Stages(1, 1, 1, 1) == Stages(2, 3, 4, 5)
