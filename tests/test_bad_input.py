"""Bad input through the real CLI: the nasty folder, huge files, hostile questions.

Expectations: every good file indexed, every bad one reported on stderr with its reason,
exit status 3 ("partial") distinct from 1 ("failed") and 0 ("ok"), memory bounded, and
questions that are empty, huge, punctuation, foreign or full of terminal escapes get an
answer or a one-line error, never a crash. Article text is untrusted: terminal control
sequences never reach the terminal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rag.embed.embedder import DEFAULT_MODEL
from rag.errors import RagError
from rag.ingest.articles import Article, Skipped, iter_articles
from rag.results import Answer

TESTS = Path(__file__).resolve().parent
NASTY = TESTS / "data" / "nasty"
GB = 1 << 30
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what a terminal could act on

pytestmark = pytest.mark.slow


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    max_rss: int  # bytes, this child only


def run(cmd: list[str], tmp: Path, timeout: float = 900) -> Run:
    """Run `cmd` and measure its own peak RSS (wait4 on the child, not RUSAGE_CHILDREN's
    maximum over every child the test session has had)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    out, err = tmp / "stdout", tmp / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"),
               usage.ru_maxrss * 1024)


RAG = [sys.executable, "-m", "rag"]

ESCAPES_JSONL = [
    {"id": "esc-1", "title": "Harbour master \u001b[2Jwarns of \u001b]0;owned\u0007storms",
     "text": "The harbour master \u001b[31msaid\u001b[0m the breakwater held during the storm. "
             "Crews were told to \u009b2Jdouble their mooring lines before the weekend.",
     "url": "https://example.org/harbour\u001b]8;;https://evil.example\u0007",
     "source": "Coast \u001b[5mNews", "published": "2025-03-03"},
]
ESCAPES_TXT = ("Lighthouse\u001b[8m keeper\u001b[0m retires\n\nThe keeper of the north "
               "lighthouse\u001b[1A\u001b[2K retired after forty years of service.\n")


@pytest.fixture(scope="module")
def nasty_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Run]:
    """The nasty folder plus a folder of escape-laden articles, indexed by the real CLI."""
    tmp = tmp_path_factory.mktemp("nasty")
    extra = tmp / "extra"
    extra.mkdir()
    (extra / "escapes.jsonl").write_text(
        "\n".join(json.dumps(o) for o in ESCAPES_JSONL) + "\n", encoding="utf-8")
    (extra / "escapes.txt").write_text(ESCAPES_TXT, encoding="utf-8")
    # Entries git cannot carry portably: a non-UTF-8 name, a link loop, a link out.
    with open(os.path.join(os.fsencode(extra), b"caf\xe9.txt"), "w") as f:
        f.write("Latin-1 name\n\nThis file's name is not valid UTF-8.\n")
    (extra / "loop.txt").symlink_to(extra / "loop.txt")
    (tmp / "outside.txt").write_text("Outside\n\nA file outside the folder given.\n")
    (extra / "passwd.txt").symlink_to(tmp / "outside.txt")
    index = tmp / "index"
    r = run([*RAG, "index", str(NASTY), str(extra), "--index", str(index), "--threads", "1",
             "-q"], tmp)
    return index, extra, r


# Counted by hand from tests/data/nasty/README and the entries `nasty_index` makes, not
# from the parser: 22 articles (bom_crlf, cp1252, "naïve file", dup_a, front_matter,
# invalid_utf8, news.html, plain.md, spoof, utf16, 3 long_title files, 5 good lines of
# broken.jsonl, 2 good items of list.json, escapes.jsonl, escapes.txt), 14 skips (README,
# binary, empty, not_supported.pdf, script_only.html, 4 bad lines of broken.jsonl, 2 bad
# items of list.json, the non-UTF-8 name, the link loop, the link out of the folder) and 1
# duplicate (dup_b); .hidden.txt is never read.
GOOD_ARTICLES, PARSE_SKIPS, DUPLICATES = 22, 14, 1


def expected(extra: Path) -> tuple[dict[str, Article], list[Skipped], list[Article]]:
    """Good articles (first of each content hash), parse skips, and duplicates."""
    good: dict[str, Article] = {}
    skipped: list[Skipped] = []
    dups: list[Article] = []
    hashes: set[str] = set()
    for item in iter_articles([NASTY, extra]):
        if isinstance(item, Skipped):
            skipped.append(item)
        elif item.content_hash in hashes:
            dups.append(item)
        else:
            hashes.add(item.content_hash)
            good[item.id] = item
    return good, skipped, dups


def test_nasty_folder_is_partial_with_every_reason(nasty_index: tuple[Path, Path, Run]) -> None:
    from rag.index.facade import Index

    index, extra, r = nasty_index
    assert r.returncode == 3, r.stderr  # partial: distinct from 0 (ok) and 1 (failed)
    good, skipped, dups = expected(extra)
    assert (len(good), len(skipped), len(dups)) == (GOOD_ARTICLES, PARSE_SKIPS, DUPLICATES)
    m = re.match(r"(\d+) added, 0 updated, 0 removed, 0 unchanged, (\d+) skipped", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == GOOD_ARTICLES
    assert int(m.group(2)) == PARSE_SKIPS + DUPLICATES

    reported = [ln for ln in r.stderr.splitlines() if ln.startswith("skipped ")]
    assert len(reported) == len(skipped) + len(dups), r.stderr
    assert "Traceback" not in r.stderr
    for s in skipped:
        assert f"skipped {s.path}: {s.reason}" in reported, s
    for d in dups:
        assert any(ln.startswith(f"skipped {d.path}: duplicate of ") for ln in reported), d

    # Independent of the parser's own verdicts: what a user expects from these files.
    def reason(name: str) -> str:
        return next(ln for ln in reported if ln.startswith(f"skipped {NASTY / name}"))

    assert "empty" in reason("empty.txt")
    assert "binary" in reason("binary.txt")
    assert "unsupported" in reason("not_supported.pdf")
    assert "no article text" in reason("script_only.html")
    assert "duplicate of dup_a.txt" in reason("dup_b.txt")
    assert "invalid JSON" in reason("broken.jsonl")
    for name, why in (("caf\\xe9.txt", "not valid UTF-8"), ("loop.txt", "Too many levels"),
                      ("passwd.txt", "outside")):
        assert any(ln.startswith(f"skipped {extra / name}") and why in ln for ln in reported), name
    assert not any(".hidden" in ln for ln in reported)

    idx = Index.load(index, embedder=_Named())
    try:
        indexed = {a.id: a for a in idx.articles()}
        assert set(indexed) == set(good)
        for aid, art in good.items():
            assert indexed[aid].content_hash == art.content_hash
            assert indexed[aid].chunks >= 1
            stored = idx.article(aid)
            assert stored.text == art.text and not CONTROL.search(stored.text.replace(
                "\n", "").replace("\t", ""))
        paths = {Path(a.path).relative_to(NASTY).as_posix() for a in indexed.values()
                 if a.path and Path(a.path).is_relative_to(NASTY)}
        for name in ("bom_crlf.txt", "utf16.txt", "cp1252.txt", "invalid_utf8.txt",
                     "spoof.txt", "dossier é/naïve file.txt", "plain.md", "front_matter.md",
                     "news.html", "list.json", "broken.jsonl", "dup_a.txt"):
            assert name in paths, name
        assert "dup_b.txt" not in paths and ".hidden.txt" not in paths
        assert "\u201cquoted\u201d caf\u00e9" in idx.article("cp1252.txt").text
        assert "\u202e" not in idx.article("spoof.txt").title
        for name in ("long_title.json", "long_title.md", "long_title.html"):  # not shredded
            (art,) = [a for a in indexed.values() if a.path == str(NASTY / name)]
            assert art.chunks <= 4 and len(art.title.split()) == 300, (name, art.chunks)
    finally:
        idx.close()


def test_nasty_folder_memory_is_bounded(nasty_index: tuple[Path, Path, Run]) -> None:
    *_, r = nasty_index
    # The model alone is ~0.5 GB resident; a few tiny files must not add much to it.
    assert r.max_rss < 1.5 * GB, f"peak RSS {r.max_rss / GB:.2f} GB"


def test_reindexing_the_nasty_folder_changes_nothing(nasty_index: tuple[Path, Path, Run],
                                                     tmp_path: Path) -> None:
    """Idempotent and still partial: the same skips reported, nothing added or duplicated."""
    index, extra, first = nasty_index
    r = run([*RAG, "index", str(NASTY), str(extra), "--index", str(index), "--threads", "1",
             "-q"], tmp_path)
    assert r.returncode == 3
    good, skipped, dups = expected(extra)
    assert r.stdout.startswith(f"0 added, 0 updated, 0 removed, {len(good)} unchanged, "
                               f"{len(skipped) + len(dups)} skipped"), r.stdout


# -- huge files (the fake embedder: 60k real-model embeddings would take many minutes) ------
DRIVER = """\
import sys, zlib
import numpy as np
import rag.cli

class Cheap:
    \"\"\"A boundary fake that costs nothing per chunk: the test is about memory and files.\"\"\"
    name, dim = "test/cheap", 64
    def embed(self, texts):
        out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(64)
                        for t in texts]).astype(np.float32) if texts else np.zeros((0, 64), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

sys.exit(rag.cli.main(sys.argv[1:], embedder=Cheap()))
"""

WORDS = ("council harbour minister election river village report police winter school "
         "railway budget market storm bridge hospital strike farmers court museum airport "
         "festival energy prices workers union coast ferry library vote mayor").split()


def big_text(size: int, seed: int = 0) -> str:
    """`size` characters of news-like prose: sentences of 12-40 words, paragraphs."""
    rng = np.random.default_rng(seed)
    parts: list[str] = []
    n = 0
    vocab = np.array(WORDS)
    while n < size:
        words = vocab[rng.integers(0, len(vocab), 4000)]
        pos = 0
        block = []
        for length in rng.integers(12, 40, 150):
            s = " ".join(words[pos:pos + length])
            pos += length
            block.append(s[:1].upper() + s[1:] + ".")
        para = " ".join(block[:75]) + "\n\n" + " ".join(block[75:]) + "\n\n"
        parts.append(para)
        n += len(para)
    return "Annual report of the county\n\n" + "".join(parts)[:size]


def test_huge_files_are_indexed_with_bounded_memory(tmp_path: Path) -> None:
    from rag.index.facade import Index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "big.txt").write_text(big_text(50 * 2**20))
    rng = np.random.default_rng(1)
    line = " ".join(np.array(WORDS)[rng.integers(0, len(WORDS), 2**20 // 6)])[:2**20]
    (corpus / "one_line.txt").write_text(line)  # 1 MB, no newline, no punctuation
    (corpus / "small.txt").write_text("Ferry strike\n\nFerry crews walked out on Monday.\n")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    index = tmp_path / "index"

    r = run([sys.executable, str(script), "index", str(corpus), "--index", str(index), "-q"],
            tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 added" in r.stdout and "0 skipped" in r.stdout
    # Text, chunk rows and vectors of 50 MB are held while the one transaction is built;
    # a bound well below "whole folder several times over" catches a regression to that.
    print(f"huge files: peak RSS {r.max_rss / 2**20:.0f} MB; {r.stdout.strip()}")
    assert r.max_rss < 1.5 * GB, f"peak RSS {r.max_rss / GB:.2f} GB"

    class Cheap:  # only to open the index; no search here
        name, dim = "test/cheap", 64

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 64), np.float32) / 8

    idx = Index.load(index, embedder=Cheap())  # type: ignore[arg-type]
    try:
        arts = {a.id: a for a in idx.articles()}
        assert set(arts) == {"big.txt", "one_line.txt", "small.txt"}
        assert arts["big.txt"].chunks > 50 * 2**20 // 2000  # ~160-token chunks, not one blob
        assert arts["one_line.txt"].chunks > 2**20 // 2000
        assert idx.article("one_line.txt").text == line
        from rag.ingest.chunking import count_tokens

        rows = idx.store.db.execute(
            "SELECT text FROM chunks WHERE article_id='one_line.txt' AND deleted IS NULL"
        ).fetchall()
        # Cut into token windows, not kept as one blob. (A window re-encoded on its own can
        # come out one token over the limit: BPE merges differ at the cut. The model's own
        # limit is enforced separately, with its tokenizer.)
        assert max(count_tokens(t) for (t,) in rows) <= idx.chunking.max_tokens + 1
    finally:
        idx.close()


# -- questions -----------------------------------------------------------------------------
class _Named:
    """Opens an index built with the default model, without loading the model."""

    name = DEFAULT_MODEL
    dim = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 384), np.float32) / np.sqrt(384)


QUESTIONS = {
    "empty": "",
    "blank": " \n\t ",
    "punctuation": "?!... ;; -- ??",
    "long": ("What did the harbour master say about the breakwater and the storm? " * 150)[:10_000],
    "russian": "Где находится Карачев?",
    "escapes": "\x1b[31mWhat did the harbour master\x1b[0m say?\x1b]0;owned\x07",
    "nul_and_rtl": "Who retired from the \u202elighthouse\x00?",
}


def test_questions_through_the_library(nasty_index: tuple[Path, Path, Run],
                                       real_embedder: object) -> None:
    from rag import answer
    from rag.index.facade import Index

    index, *_ = nasty_index
    idx = Index.load(index, embedder=real_embedder)  # type: ignore[arg-type]
    try:
        for name, q in QUESTIONS.items():
            try:
                a = answer(q, idx)
            except RagError as e:
                assert name in ("empty", "blank", "punctuation"), (name, e)
                assert str(e) and "\n" not in str(e)
                continue
            assert isinstance(a, Answer) and a.text, name
            assert not CONTROL.search(a.text.replace("\n", "")), (name, a.text)
            assert len(a.question) <= 2000
    finally:
        idx.close()


def test_questions_and_escapes_through_the_cli(nasty_index: tuple[Path, Path, Run],
                                               tmp_path: Path) -> None:
    index, *_ = nasty_index
    base = ["--index", str(index), "--threads", "1"]
    # Questions rejected before the model loads, and three that load it (in parallel: each
    # is mostly start-up time). The library test above covers every question.
    names = ("empty", "blank", "punctuation", "russian", "escapes")
    jobs = {name: [*RAG, "ask", QUESTIONS[name], *base] for name in names}
    jobs["search"] = [*RAG, "search", "harbour master breakwater lighthouse keeper", *base,
                      "-k", "4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    procs = {n: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for n, c in jobs.items()}
    results = {n: (p.wait(600), *p.communicate()) for n, p in procs.items()}
    for name, (rc, out_b, err_b) in results.items():
        out, err = out_b.decode(), err_b.decode()
        assert "Traceback" not in err, (name, err)
        assert not CONTROL.search(out.replace("\n", "").replace("\t", "")), (name, out)
        assert not CONTROL.search(err.replace("\n", "").replace("\t", "")), (name, err)
        if name in ("empty", "blank", "punctuation"):
            assert rc == 1, (name, rc, out, err)
            assert err.startswith("error: ") and err.count("\n") == 1, (name, err)
        else:
            assert rc == 0, (name, rc, err)
            assert out.strip(), name
    _, out, _ = results["search"]
    assert b"Harbour master" in out or b"Lighthouse" in out
    _, out, _ = results["escapes"]
    assert b"harbour" in out.lower()


# -- issue 16: one bad file never stops a run; links, titles, uploads, sync ------------------
def fake_cli(tmp: Path, prelude: str = "") -> list[str]:
    """The real CLI in a child process with the fake embedder (and `prelude` run first)."""
    script = tmp / "fake_cli.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n{prelude}\n"
                      "from fakes import FakeEmbedder\nimport rag.cli\n"
                      "sys.exit(rag.cli.main(sys.argv[1:], embedder=FakeEmbedder()))\n")
    return [sys.executable, str(script)]


GOOD = "Harbour reopens\n\nFerries resumed service on Monday after the storm closed the port.\n"


def test_bad_names_and_links_skip_only_that_entry(tmp_path: Path) -> None:
    """A non-UTF-8 file name, a symlink loop and a link to a file outside the folder are
    each skipped with a reason; the run goes on and indexes the rest (exit 3, partial)."""
    corpus, outside = tmp_path / "corpus", tmp_path / "secret.txt"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    with open(os.path.join(os.fsencode(corpus), b"caf\xe9.txt"), "w") as f:
        f.write("Latin-1 name\n\nThis file's name is not valid UTF-8.\n")
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    outside.write_text("Private notes\n\nThe password is swordfish and nobody may know it.\n")
    (corpus / "passwd.txt").symlink_to(outside)
    cli = fake_cli(tmp_path)
    r = run([*cli, "index", str(corpus), "--index", str(tmp_path / "index"), "-q"], tmp_path)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout.startswith("1 added, 0 updated, 0 removed, 0 unchanged, 3 skipped"), r.stdout
    assert re.search(r"skipped .*caf\\xe9\.txt: the name is not valid UTF-8", r.stderr), r.stderr
    assert re.search(r"skipped .*loop\.txt: cannot read \(Too many levels", r.stderr), r.stderr
    assert re.search(r"skipped .*passwd\.txt: symbolic link to .*secret\.txt, outside .*"
                     r"--follow-links", r.stderr), r.stderr
    r = run([*cli, "search", "password swordfish", "--index", str(tmp_path / "index"),
             "--mode", "lexical"], tmp_path)
    assert "swordfish" not in r.stdout
    # Asked for, the outside file is indexed.
    r = run([*cli, "index", str(corpus), "--index", str(tmp_path / "index"), "-q",
             "--follow-links"], tmp_path)
    assert r.stdout.startswith("1 added, 0 updated, 0 removed, 1 unchanged, 2 skipped"), r.stdout


def test_html_without_lxml_html_clean_skips_only_the_html(tmp_path: Path) -> None:
    """lxml >= 5.2 without lxml_html_clean: trafilatura cannot import. Only .html files
    are skipped, with the fix in the reason; the .txt files are indexed."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD)
    (corpus / "page.html").write_text((NASTY / "news.html").read_text())
    block = ("import importlib.abc\nclass Block(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.startswith('lxml_html_clean'):\n"
             "            raise ImportError('No module named ' + repr(name))\n"
             "sys.meta_path.insert(0, Block())\n")
    r = run([*fake_cli(tmp_path, block), "index", str(corpus), "--index",
             str(tmp_path / "index"), "-q"], tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stdout.startswith("1 added, 0 updated, 0 removed, 0 unchanged, 1 skipped"), r.stdout
    assert re.search(r"skipped .*page\.html: HTML support is not installed .*lxml_html_clean",
                     r.stderr), r.stderr


def test_a_long_title_does_not_shred_its_article(tmp_path: Path) -> None:
    """A 300-word title over a 960-character body: a few chunks (the title is capped for
    embedding), and the whole title kept for display."""
    from fakes import FakeEmbedder

    from rag.index.facade import Index

    idx = Index.build([NASTY / "long_title.json"], path=tmp_path / "index",
                      embedder=FakeEmbedder(max_tokens=256), progress=False)
    try:
        (info,) = idx.articles()
        assert 1 <= info.chunks <= 4, info.chunks
        assert len(idx.article(info.id).title.split()) == 300
    finally:
        idx.close()


def _service(index: Path, corpus: Path | None) -> object:
    from fakes import FakeEmbedder

    from rag.app.service import Service

    s = Service(index, corpus, embedder=FakeEmbedder())
    s.start()
    s.index()  # waits for the start-up sync
    return s


def test_an_upload_never_replaces_a_corpus_article(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a1.txt").write_text(GOOD)
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(json.dumps({"id": "a1.txt", "title": "Forged",
                                   "text": "The harbour never reopened, officials lied."}) + "\n")
    s = _service(tmp_path / "index", corpus)
    s.add_files([str(hostile)])  # type: ignore[attr-defined]
    idx = s.index()  # type: ignore[attr-defined]
    assert idx.article("a1.txt").text == GOOD.split("\n\n", 1)[1].strip()
    assert idx.article("a1.txt").path == str((corpus / "a1.txt").absolute())
    assert idx.article("upload:a1.txt").title == "Forged"  # its own namespace
    # A corpus record may not claim an upload's id either.
    (corpus / "claim.jsonl").write_text(json.dumps({"id": "upload:a1.txt", "text": "x y z"}))
    r = idx.add([corpus], sync=True, progress=False)
    assert any("kept for the app's uploads" in sk.reason for sk in r.skipped)
    assert idx.article("upload:a1.txt").title == "Forged"


def test_uploads_of_an_old_index_get_their_namespace_in_place(tmp_path: Path) -> None:
    """Uploads indexed before the namespace existed are renamed where they are: same
    chunks and vectors, nothing embedded, no duplicate."""
    from fakes import FakeEmbedder

    from rag.index.facade import Index

    index = tmp_path / "index"
    (index / "uploads").mkdir(parents=True)
    (index / "uploads" / "note.txt").write_text(GOOD)
    old = Index.build([index / "uploads" / "note.txt"], path=index, embedder=FakeEmbedder(),
                      progress=False)  # the old app's way: no namespace
    chunk_ids = sorted(h.chunk_id for h in old.search("ferries storm", k=3))
    old.close()

    class NoEmbedding(FakeEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            assert len(texts) <= 1, "re-embedded"  # a query may be embedded, nothing else
            return super().embed(texts)

    idx = Index.open(index, embedder=NoEmbedding())
    idx.add([index / "uploads" / "note.txt"], progress=False, namespace="upload:")
    assert [a.id for a in idx.articles()] == ["upload:note.txt"]
    assert sorted(h.chunk_id for h in idx.search("ferries storm", k=3)) == chunk_ids
    idx.close()


def test_sync_keeps_what_it_cannot_read(tmp_path: Path) -> None:
    """Sync removes only articles whose files are known to be gone: not those of a file
    that became unreadable, nor under a folder with ':' in its name, nor of an emptied
    (unmounted?) folder, nor anything when the folder is missing."""
    from fakes import FakeEmbedder

    from rag.errors import InputError
    from rag.index.facade import Index

    corpus = tmp_path / "corpus"
    (corpus / "2024:news").mkdir(parents=True)
    (corpus / "2024:news" / "a.txt").write_text(GOOD)
    (corpus / "b.txt").write_text("Rail strike ends\n\nTrain drivers returned to work.\n")
    (corpus / "c.txt").write_text("Library saved\n\nVolunteers raised money for the roof.\n")
    idx = Index.build([corpus], path=tmp_path / "index", embedder=FakeEmbedder(),
                      progress=False)
    (corpus / "2024:news" / "a.txt").write_bytes(b"\x00\x01\x02 half-synced cloud file")
    (corpus / "c.txt").unlink()  # really gone
    r = idx.add([corpus], sync=True, progress=False)
    assert (r.removed, r.kept) == (1, 1)
    assert {a.id for a in idx.articles()} == {"2024:news/a.txt", "b.txt"}
    for f in ("2024:news/a.txt", "b.txt"):
        (corpus / f).unlink()
    (corpus / "2024:news").rmdir()
    r = idx.add([corpus], sync=True, progress=False)  # an empty folder: unmounted?
    assert r.removed == 0 and len(idx.articles()) == 2
    assert any("empty" in sk.reason for sk in r.skipped)
    corpus.rmdir()
    with pytest.raises(InputError):
        idx.add([corpus], sync=True, progress=False)
    assert len(idx.articles()) == 2
    idx.close()


def test_sync_keeps_an_unreadable_folder(tmp_path: Path) -> None:
    """A folder the indexing process cannot read.

    Root reads everything, so as root the CLI runs without the two capabilities that let
    it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), still as root: it keeps what an owner may
    do, so it reads the checkout, the virtualenv and this test's files wherever they live
    (a clone under a `chmod 700` folder included), and only the mode-000 folder is shut to
    it. (An unprivileged uid could not even import the project from such a clone.)"""
    import shutil

    drop = "-dac_override,-dac_read_search"
    user = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"] \
        if os.geteuid() == 0 else []
    if user and not shutil.which("setpriv"):
        pytest.skip("root without setpriv: permissions cannot be denied")
    corpus = tmp_path / "corpus"
    (corpus / "locked").mkdir(parents=True)
    (corpus / "locked" / "a.txt").write_text(GOOD)
    (corpus / "b.txt").write_text("Rail strike ends\n\nTrain drivers returned to work.\n")
    cmd = [*user, *fake_cli(tmp_path), "index", str(corpus), "--index",
           str(tmp_path / "index"), "--sync", "-q"]
    r = run(cmd, tmp_path)
    assert r.returncode == 0, r.stderr
    (corpus / "locked").chmod(0o000)
    try:
        probe = subprocess.run([*user, "ls", str(corpus / "locked")], capture_output=True)
        assert probe.returncode != 0, "the folder is still readable: the test proves nothing"
        r = run(cmd, tmp_path)
    finally:
        (corpus / "locked").chmod(0o755)
    assert r.returncode == 3, r.stderr
    assert re.search(r"skipped .*locked: cannot read folder", r.stderr), r.stderr
    assert "0 removed" in r.stdout and "1 articles kept" in r.stdout, r.stdout


def test_search_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(150):  # more output than a pipe buffers (64 KiB)
        (corpus / f"a{i}.txt").write_text(f"Harbour note {i}\n\n" + " ".join(
            f"Ferries and storm {i} number {j}." for j in range(25)) + "\n")
    cli = fake_cli(tmp_path)
    assert run([*cli, "index", str(corpus), "--index", str(tmp_path / "index"), "-q"],
               tmp_path).returncode == 0
    search = fake_cli(tmp_path, "import rag.cli\nfrom fakes import FakeEmbedder\n"
                      "from rag.index.facade import Index\nrag.cli._open_index = lambda a: "
                      "Index.load(a.index, embedder=FakeEmbedder())\n")
    p = subprocess.Popen([*search, "search", "harbour ferries", "-k", "150", "--json",
                          "--index", str(tmp_path / "index")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=os.environ.copy())
    assert p.stdout is not None and p.stderr is not None
    p.stdout.readline()
    p.stdout.close()  # `| head -1`
    err = p.stderr.read().decode()
    assert p.wait(60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_app_adds_the_seeds_only_to_the_default_index() -> None:
    from rag.app.ui import startup_corpus

    assert startup_corpus("index", None) == "seeds"
    assert startup_corpus("/home/me/my-index", None) is None  # a user's own index
    assert startup_corpus("/home/me/my-index", "news") == "news"
