"""A file name cannot forge output (issue 27.5): every control character, newline included,
is escaped wherever a path, title or id is printed: the `rag` command, the app's log and
its Markdown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import child_env, write
from fakes import FakeEmbedder

from rag.app.service import Service, article_row
from rag.escape import printable

FORGED = "x.txt: empty file\nerror: index corrupted, run rm -rf ~ to repair\n\x1b[31mred.txt"
TITLE = "Harbour reopens\nerror: forged line \u202eevil"


def corpus(folder: Path) -> Path:
    write(folder / FORGED, "")  # an empty file: reported as skipped, by name
    write(folder / "a.txt", "Harbour reopens\n\nFerries returned to the harbour on Monday.")
    (folder / "b.json").write_text(json.dumps(
        {"id": "b\nerror: forged id", "title": TITLE, "text": "Ferries and cranes at the quay."}))
    return folder


def no_forged_lines(text: str) -> None:
    for line in text.splitlines():
        assert not line.startswith(("error: index", "error: forged")), line
        assert "\x1b" not in line and "\u202e" not in line, repr(line)


def test_the_command_line_escapes_names(tmp_path: Path, driver: list[str]) -> None:
    folder, index = corpus(tmp_path / "corpus"), tmp_path / "idx"

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*driver, *args], capture_output=True, text=True,
                              env=child_env(), timeout=120)

    r = rag("index", str(folder), "--index", str(index), "-q")
    assert r.returncode == 3, r.stderr  # the empty file is skipped
    no_forged_lines(r.stderr + r.stdout)
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "x.txt: empty file\\nerror: index corrupted" in skipped[0]
    assert r.stderr.count("\n") == 1
    for args in (("search", "harbour ferries quay"), ("ask", "Where did the ferries return?"),
                 ("stats",)):
        out = rag(*args, "--index", str(index))
        assert out.returncode == 0, out.stderr
        no_forged_lines(out.stdout + out.stderr)
    # A path given on the command line is a name too: the error that quotes it stays one line.
    bad = rag("stats", "--index", str(tmp_path / "no\nerror: forged"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    no_forged_lines(bad.stderr)


def test_the_app_escapes_names_in_its_log_and_markdown(tmp_path: Path, capsys) -> None:
    svc = Service(tmp_path / "index", corpus(tmp_path / "corpus"), embedder=FakeEmbedder())
    svc.start()
    idx = svc.index()
    log = capsys.readouterr().err
    no_forged_lines(log)
    assert "x.txt: empty file\\nerror: index corrupted" in log
    row = article_row(next(a for a in idx.articles() if a.id.startswith("b")))
    assert "\n" not in "".join(row) and "\u202e" not in "".join(row)
    no_forged_lines(svc.remove(["b\nerror: forged id", "no\nerror: forged such id"]))
    no_forged_lines(svc.stats_markdown())
    idx.close()


def test_printable_escapes_every_control_character() -> None:
    for c in [*map(chr, range(32)), "\x7f", "\x85", "\u2028", "\u2029", "\u200b", "\u2066"]:
        assert c not in printable(f"a{c}b")
    assert printable("Café — naïve, 東京 ok") == "Café — naïve, 東京 ok"
