"""The README's own command lines, taken from the README, run as written from a fresh shell.

"Fresh": `bash -c LINE` in the checkout with an environment of HOME (a tmp folder, so
`~/articles` and `~/my-index` are the test's), a plain PATH and LANG, nothing activated.
Two settings come from the suite itself: RAG_VENV (the virtualenv these tests run in, which
`./run` would otherwise look for at `.venv`) and XDG_CACHE_HOME (the user's cache, so the
exported ONNX model is not exported again); PYTHONPATH too, where the suite was given one.
Lines that need what a test cannot have (a Ray cluster, /mnt/archive, a server left
running) are parsed by the real argument parser instead of run.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SEED_ID, SEEDS

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_lines() -> list[str]:
    """Every command line of the README's ```bash blocks."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip()]


def fresh_env(home: Path) -> dict[str, str]:
    from rag.embed.export import cache_dir

    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "RAG_VENV": sys.prefix, "XDG_CACHE_HOME": str(cache_dir().parent)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def sh(line: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_readme_rag_lines_run_as_written_from_a_fresh_shell(tmp_path: Path) -> None:
    lines = bash_lines()
    rag_lines = [ln for ln in lines if ln.startswith("./run rag ")]
    assert len(rag_lines) >= 5, lines
    home = tmp_path / "home"
    articles = home / "articles"
    articles.mkdir(parents=True)
    (articles / SEED_ID).write_text((SEEDS / SEED_ID).read_text("utf-8"), encoding="utf-8")
    (articles / "budget.txt").write_text(
        "Minister announces rail budget\n\nThe transport minister announced a budget of 4 "
        "billion euros for new railway lines on Monday.\n", encoding="utf-8")
    env = fresh_env(home)

    ran = []
    for line in rag_lines:
        argv = shlex.split(line, comments=True)[2:]
        if "~/" not in line or "--ray" in argv or "--shards" in argv:
            from rag.cli import parser

            parser().parse_args(argv)  # a cluster or /mnt/archive: parsed, not run
            continue
        r = sh(line, env)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "command not found" not in r.stderr
        ran.append((argv[0], r.stdout))
    assert [cmd for cmd, _ in ran] == ["index", "index", "ask"], ran
    assert "2 added" in ran[0][1] and "0 added" in ran[1][1]
    assert "4 billion euros" in ran[2][1] and "Sources:" in ran[2][1], ran[2][1]

    # The chat line passes its flags to app.py's parser (parsed: a server would stay up).
    chat = [ln for ln in lines if ln.startswith("./run --index")]
    assert chat
    from rag.app.ui import add_serve_arguments

    add_serve_arguments(argparse.ArgumentParser()).parse_args(shlex.split(chat[0], comments=True)[1:])

    # The activation line the README gives puts `rag` and the project's python on PATH.
    [activate] = [ln for ln in lines if ln.startswith("source ")]
    activate = shlex.split(activate, comments=True)
    venv = os.path.relpath(sys.prefix, ROOT) if Path(sys.prefix).is_relative_to(ROOT) \
        else sys.prefix  # .venv, or the venv the suite runs in (CI's .venv-ci)
    script = " ".join(activate).replace(".venv/", f"{venv}/")
    r = sh(f"{script} && rag stats --index ~/my-index && python -c 'import rag, gradio'", env)
    assert r.returncode == 0 and "2 articles" in r.stdout, (r.stdout, r.stderr)

    # Called from another folder, ./run rag reads relative paths there.
    r = sh(f"{ROOT / 'run'} rag stats --index my-index", env, cwd=home)
    assert r.returncode == 0 and "2 articles, " in r.stdout, (r.stdout, r.stderr)


def test_every_rag_command_the_readme_names_exists() -> None:
    from rag.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    named = set(re.findall(r"(?:^|`|\./run )rag ([a-z][a-z-]*)", README, flags=re.MULTILINE))
    assert {"index", "search", "ask", "eval", "bench", "serve", "remove", "stats"} <= named
    assert named <= set(sub.choices), named - set(sub.choices)
