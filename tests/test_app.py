"""The Gradio app end to end: the real `app.py` in a subprocess, driven with gradio_client.

Also the pure pieces of `rag.app` that keep it safe: host checks, upload names, escaping.
The helpers `start_app`/`stop_app` are shared with tests/test_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED_TITLE = "Russia Claims Two More ATACMS Missile Strikes by Ukraine, Threatens Retaliation"
ZORBEX = ("Zorbex Bridge Reopens in Lindqvist\n"
          "The Zorbex bridge in Lindqvist was reopened on 3 March after repairs costing 4.2 "
          "million euros. Engineers replaced the whole deck and repainted the railings.\n")
ZORBEX_Q = "How much did the repairs of the Zorbex bridge in Lindqvist cost?"


# -- helpers (also used by test_browser.py) ---------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an app subprocess: no auth, no LLM, no telemetry, temp under tmp."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAG_", "GRADIO_", "OPENAI_"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp_path / "gradio-tmp"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAG_THREADS="1")
    return env


def start_app(tmp_path: Path, corpus: Path | None, args: Sequence[str] = (),
              timeout: float = 120.0, index: str = "index") -> tuple[subprocess.Popen[bytes], str]:
    """Start `python app.py` in `tmp_path` on a free port (index in tmp_path/`index`; no
    --corpus when `corpus` is None); return the process and its URL once it answers HTTP."""
    port = free_port()
    log = open(tmp_path / "app.log", "wb")  # closed when the process is
    source = ["--corpus", os.path.relpath(corpus, tmp_path)] if corpus else []
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port),
         "--index", index, *source, *args],
        cwd=tmp_path, env=app_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app exited with {proc.returncode}:\n{read_log(tmp_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_app(proc)
    raise AssertionError(f"app did not answer within {timeout} s:\n{read_log(tmp_path)}")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_log(tmp_path: Path) -> str:
    return (tmp_path / "app.log").read_text(errors="replace")[-4000:]


def seed_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", corpus)
    return corpus


# -- the app over gradio_client ----------------------------------------------------------------
@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    proc, url = start_app(tmp_path, seed_corpus(tmp_path))
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.mark.slow
def test_ask_upload_remove(app: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(app, verbose=False)
    out = client.predict("How many missiles were intercepted?", api_name="/chat")
    answer, _, sources = out.partition("\n\nSources:\n")
    assert "two" in answer.lower() and "[1]" in answer
    assert f"[1] {SEED_TITLE} (Published 26 Nov 2024" in sources

    note = tmp_path / "zorbex.txt"
    note.write_text(ZORBEX, encoding="utf-8")
    junk = tmp_path / "slides.pdf"
    junk.write_bytes(b"%PDF-1.4")
    report = client.predict([handle_file(str(note)), handle_file(str(junk))], api_name="/upload")
    assert "`zorbex.txt`: added" in report
    assert "`slides.pdf`: skipped: unsupported file type" in report
    uploads = tmp_path / "index" / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["zorbex.txt"]

    ids = [a["id"] for a in client.predict(api_name="/articles")]
    assert "upload:zorbex.txt" in ids
    out = client.predict(ZORBEX_Q, api_name="/chat")
    assert "4.2 million euros" in out
    assert "Zorbex Bridge Reopens in Lindqvist (zorbex.txt)" in out

    assert "removed Zorbex Bridge" in client.predict(["upload:zorbex.txt"], api_name="/remove")
    assert not (uploads / "zorbex.txt").exists()
    out = client.predict(ZORBEX_Q, api_name="/chat")
    assert "Zorbex Bridge Reopens" not in out and "4.2 million" not in out
    assert "upload:zorbex.txt" not in [a["id"] for a in client.predict(api_name="/articles")]


@pytest.mark.slow
@pytest.mark.parametrize("command", [["app.py"], ["-m", "rag", "serve"]])
def test_non_local_host_needs_auth(tmp_path: Path, command: list[str]) -> None:
    script = [str(ROOT / command[0])] if command == ["app.py"] else command
    proc = subprocess.run(
        [sys.executable, *script, "--host", "0.0.0.0", "--port", str(free_port()),
         "--index", str(tmp_path / "index"), "--corpus", str(tmp_path)],
        cwd=tmp_path, env=app_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "refusing to listen on 0.0.0.0" in proc.stderr
    assert "RAG_AUTH" in proc.stderr and "--allow-remote" in proc.stderr
    assert not (tmp_path / "index").exists()  # refused before touching anything


# -- the pure parts of rag.app ------------------------------------------------------------------------
def test_host_rules() -> None:
    from rag import RagError
    from rag.app.security import check_host, parse_auth

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_host(host, None, False)
    check_host("0.0.0.0", ("u", "p"), False)
    check_host("0.0.0.0", None, True)
    with pytest.raises(RagError, match="RAG_AUTH"):
        check_host("192.168.1.5", None, False)
    assert parse_auth("ann:pa:ss") == ("ann", "pa:ss")
    with pytest.raises(RagError):
        parse_auth("nocolon")


@pytest.mark.parametrize("name, expected", [
    ("report.txt", "report.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\win.ini.md", "win.ini.md"),
    ("<script>.json", "_script_.json"),
    ("..", None), ("", None), ("/", None),
    (".hidden.txt", "hidden.txt"),
])
def test_safe_name(name: str, expected: str | None) -> None:
    from rag.app.security import safe_name

    assert safe_name(name) == expected


def _turn(quote_text: str, passage: str, **kw: object) -> tuple[object, object]:
    from rag.app.history import Quote, Turn

    start = passage.index(quote_text)
    q = Quote(n=1, article_id="a.txt", title="<script>window.__xss=1</script>",
              published="2024-06-01", source="<b>Port</b>", url="javascript:alert(1)",
              quote=quote_text, start=100 + start, end=100 + start + len(quote_text),
              chunk_start=100, chunk_end=100 + len(passage))
    return q, Turn(question="<q>", text=f"{quote_text} [1]", quotes=(q,), **kw)


def test_sources_escape_untrusted_text() -> None:
    from rag import Answer, Citation
    from rag.app.render import Passage, answer_markdown, panel_html, sources_text

    evil = '<img src=x onerror="window.__xss=2">'
    passage = f"Published 09:00 IST, June 1st 2024\nBefore. The crane {evil} lifted 7,300 " \
              "containers. After."
    quote = passage[passage.index("The crane"):passage.index(" After.")]
    _, turn = _turn(quote, passage, short="7,300", short_n=1)
    out = panel_html([turn], lambda q: Passage(passage, 100))
    assert "<script" not in out and "<img" not in out and "href=" not in out  # no js: link
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in out
    assert "<mark>The crane &lt;img src=x onerror=&quot;window.__xss=2&quot;&gt; lifted" in out
    assert "Published 1 Jun 2024" in out and "<code>javascript:alert(1)</code>" in out
    assert "Published 09:00 IST" not in out  # the dateline is the card's date, not its text
    md = answer_markdown(turn, 0)
    assert md.startswith("**7,300** [[1]](#rag-cite-0-1)")
    assert "&lt;img src=x" in md and "<img" not in md
    cite = Citation(n=1, article_id="a.txt", title="<script>window.__xss=1</script>",
                    published="2024-06-01", source="<b>Port</b>", url="javascript:alert(1)",
                    path="/x/a.txt", quote=quote, start=0, end=len(quote))
    ans = Answer(question="q", text=f"{quote} [1]", citations=(cite,), hits=(),
                 abstained=False)
    assert sources_text(ans).startswith("\n\nSources:\n[1] <script>window.__xss=1</script> "
                                        "(Published 1 Jun 2024; <b>Port</b>; javascript:alert(1))")


def test_abstention_said_once_with_nearest_passages_by_article() -> None:
    from rag import Answer, Hit
    from rag.app.history import Turn
    from rag.app.render import Passage, answer_markdown, panel_html

    def hit(rank: int, text: str) -> Hit:
        return Hit(rank=rank, score=0.1, article_id="b.txt", title="Harbour <i>news</i>",
                   published=None, source=None, url="https://example.org/a?b=1&c=2",
                   path=None, chunk_id=rank, text=text, start=0, end=len(text))
    long = "Moscow " * 100
    ans = Answer(question="Who won?", text="Not in the articles", citations=(),
                 hits=(hit(1, "Cranes <b>lifted</b> boxes."), hit(2, long)), abstained=True)
    turn = Turn.of_answer(ans, "published after 2030-01-01")
    assert answer_markdown(turn, 0).startswith(
        "Not in the articles. Only articles published after 2030-01-01 were searched")
    out = panel_html([turn], lambda q: Passage(q.quote, q.start))
    assert out.count('data-testid="rag-abstained"') == 1 and "after 2030-01-01" in out
    assert out.count("Harbour &lt;i&gt;news&lt;/i&gt;") == 1  # one card per article
    assert "Cranes &lt;b&gt;lifted&lt;/b&gt;" in out and "Moscow Moscow …" in out
    assert "Mosco…" not in out  # cut between words
    assert 'href="https://example.org/a?b=1&amp;c=2"' in out and "Undated" in out
    assert "<mark>" not in out


def test_changed_or_removed_article_is_said_not_highlighted() -> None:
    from rag.app.render import Passage, panel_html

    passage = "Before. The crane lifted boxes. After."
    _, turn = _turn("The crane lifted boxes.", passage)
    changed = panel_html([turn], lambda q: Passage(q.quote, q.start, "changed"))
    assert "The article has changed since this answer" in changed and "<mark>" not in changed
    gone = panel_html([turn], lambda q: Passage(q.quote, q.start, "gone"))
    assert "no longer in the index" in gone and "The crane lifted boxes." in gone


def test_article_view_and_export_escape_and_recheck() -> None:
    from rag.app.article import article_html, export_markdown
    from rag.app.history import Store
    from rag.app.render import Passage
    from rag.ingest.articles import Article

    text = "<script>x()</script> Intro. The crane lifted boxes. End."
    art = Article(id="a.txt", title="<img src=x onerror=y()>", text=text)
    s = text.index("The crane")
    good = (s, s + 23, 1, "The crane lifted boxes.")
    out = article_html(art, "a.txt", [good, (0, 5, 2, "other")])
    assert "<mark>The crane lifted boxes.</mark>" in out
    assert "<script" not in out and "<img" not in out and "[2]: the article has changed" in out
    assert "is no longer in the index" in article_html(None, "<b>", [])

    q, turn = _turn("The crane lifted boxes.", text)
    conv = Store().add(turn).active()
    assert conv is not None
    md = export_markdown(conv, lambda q: Passage(q.quote, q.start))
    assert "## &lt;q&gt;" in md and "> \u201cThe crane lifted boxes.\u201d" in md
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in md and "<script" not in md
    assert "javascript:" not in md  # only http(s) addresses are given
    stale = export_markdown(conv, lambda q: Passage(q.quote, q.start, "gone"))
    assert "has changed or is gone" in stale


def test_store_round_trip_and_damaged_input() -> None:
    from rag.app.history import Store

    _, turn = _turn("The crane lifted boxes.", "Before. The crane lifted boxes. After.")
    store = Store().add(turn)
    again = Store.from_json(json.loads(json.dumps(store.to_json())))
    assert again == store and again.active() is not None
    assert again.choices() == [("<q>", store.current)]
    raw = store.to_json()
    raw["conversations"].append({"title": "no id"})  # damaged: skipped, others kept
    raw["conversations"][0]["turns"][0]["from_a_newer_version"] = 1
    assert Store.from_json(raw).conversations == store.conversations
    assert Store.from_json("junk") == Store()
    assert store.delete(store.current) == Store()
    assert store.switch(None).active() is None and store.switch("nope").current is None


# -- uploads and removal through the real Service (fake embedder: no model load) ---------------
@pytest.fixture
def service(tmp_path: Path) -> Iterator[object]:
    from fakes import FakeEmbedder

    from rag.app.service import Service

    svc = Service(tmp_path / "index", seed_corpus(tmp_path), embedder=FakeEmbedder())
    svc.start()
    svc.index()  # waits for the start-up build
    yield svc
    svc.index().close()


def test_upload_report_and_removal(service: object, tmp_path: Path) -> None:
    from rag.app.service import Service

    assert isinstance(service, Service)
    assert service.error is None
    assert service.summary().startswith("Ready: 1 article, ")
    up = tmp_path / "up"
    up.mkdir()
    (up / "zorbex.txt").write_text(ZORBEX, encoding="utf-8")
    (up / "mixed.jsonl").write_text(
        '{"id": "j1", "title": "Quarry news", "text": "The quarry closed in May."}\n'
        "not json\n", encoding="utf-8")
    (up / "empty.md").write_text("   \n", encoding="utf-8")
    (up / "000_1511c0eeef884a91.txt").write_text("Clash\nSame name as the seed.\n")
    (up / "notes.pdf").write_bytes(b"%PDF")
    evil = up / "..%2F..%2Fevil.txt"
    evil.write_text("Evil\nA file that wants out of the upload folder.\n")
    files = sorted(str(p) for p in up.iterdir())

    report = service.add_files(files)
    lines = dict(line[3:].split("`: ", 1) for line in report.splitlines() if line.startswith("- `"))
    assert lines["zorbex.txt"] == "added 1 article (1 passage)"
    assert lines["mixed.jsonl"].startswith("added 1 article (1 passage); skipped: line 2: invalid")
    assert lines["empty.md"] == "skipped: empty file"
    # Same file name as the seed article: an article of its own (uploads are "upload:NAME").
    assert lines["000_1511c0eeef884a91.txt"] == "added 1 article (1 passage)"
    assert lines["notes.pdf"].startswith("skipped: unsupported file type")
    assert lines["_2F.._2Fevil.txt"] == "added 1 article (1 passage)"  # '%' replaced
    uploads = tmp_path / "index" / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == [
        "000_1511c0eeef884a91.txt", "_2F.._2Fevil.txt", "mixed.jsonl", "zorbex.txt"]
    assert "The index now holds 5 articles" in report
    assert service.add_files([str(up / "zorbex.txt")]).startswith(
        "- `zorbex.txt`: 1 article already indexed")

    out = service.remove(["upload:zorbex.txt", "upload:j1", "000_1511c0eeef884a91.txt", "nope"])
    assert "- removed Zorbex Bridge Reopens in Lindqvist\n" in out
    assert "it comes back at the next start" in out  # the seed's file is in the corpus
    assert "- `nope`: no such article" in out
    assert sorted(p.name for p in uploads.iterdir()) == ["000_1511c0eeef884a91.txt",
                                                         "_2F.._2Fevil.txt"]
    assert sorted(a.id for a in service.index().articles()) == [
        "upload:000_1511c0eeef884a91.txt", "upload:_2F.._2Fevil.txt"]


@pytest.mark.slow  # imports gradio
def test_answer_shows_working_state_then_is_saved(service: object) -> None:
    from rag.app.blocks import _respond
    from rag.app.history import Store

    seen = []
    for out in _respond(service, "How many missiles were intercepted?", Store().to_json(),
                        5, "", "", None):  # type: ignore[arg-type]
        chat, panel = out[2], out[3]
        seen.append((json.dumps(chat) if isinstance(chat, list) else "", str(panel)))
    assert "Searching the articles" in seen[0][0]  # at once, before any answer
    assert 'data-testid="rag-working"' in seen[0][1]
    store = Store.from_json(out[0])
    conv = store.active()
    assert conv is not None and conv.turns[0].question == "How many missiles were intercepted?"
    assert "rag-working" not in seen[-1][1] and 'data-turn="0"' in seen[-1][1]


def test_stored_quotes_are_rechecked_against_the_index(service: object, tmp_path: Path) -> None:
    from rag.app.history import Quote
    from rag.app.service import Service

    assert isinstance(service, Service)
    up = tmp_path / "up"
    up.mkdir()
    (up / "zorbex.txt").write_text(ZORBEX, encoding="utf-8")
    service.add_files([str(up / "zorbex.txt")])
    art = service.index().article("upload:zorbex.txt")
    s = art.text.index("4.2 million euros")
    q = Quote(1, art.id, art.title, None, None, None, "4.2 million euros", s, s + 17)
    now = service.resolve(q)
    assert now.state == "ok" and now.text[s - now.base:s - now.base + 17] == q.quote
    (up / "zorbex.txt").write_text(ZORBEX.replace("4.2", "5.9"), encoding="utf-8")
    service.add_files([str(up / "zorbex.txt")])  # the article changed under the quote
    assert service.resolve(q).state == "changed"
    assert "has changed since the answer" in service.article_view(
        art.id, json.dumps([[s, s + 17, 1, q.quote]]))
    assert "removed" in service.remove([art.id]), service.remove([art.id])
    assert service.resolve(q).state == "gone", [a.id for a in service.index().articles()]
    assert "no longer in the index" in service.article_view(art.id, "[]")


def test_one_card_per_article_its_passages_inside() -> None:
    from rag.app.history import Quote, Turn
    from rag.app.render import Passage, panel_html

    text = "Alpha one. Beta two.\n\nGamma three. Delta four."
    q1 = Quote(1, "a", "Long <title>", None, None, None, "Alpha one.", 0, 10, 0, 20)
    q2 = Quote(2, "a", "Long <title>", None, None, None, "Gamma three.", 22, 34, 22, len(text))
    q3 = Quote(3, "b", "Other", None, None, None, "x", 0, 1, 0, 1)

    def resolve(q: Quote) -> Passage:
        if q.article_id == "b":
            return Passage(q.quote, q.start, "gone")
        return Passage(text[q.chunk_start:q.chunk_end], q.chunk_start)

    out = panel_html([Turn("q", "t [1] [2] [3]", quotes=(q1, q2, q3))], resolve)
    assert out.count("Long &lt;title&gt;") == 1 and out.count('class="rag-source"') == 2
    assert 'data-cites="1 2"' in out and "<mark>Alpha one.</mark>" in out
    assert "<mark>Gamma three.</mark>" in out and "no longer in the index" in out


def test_conversation_key_survives_a_rebuild(tmp_path: Path, fake: object) -> None:
    from rag import Index
    from rag.app.security import browser_secret

    corpus = seed_corpus(tmp_path)
    Index.build([corpus], path=tmp_path / "index", embedder=fake, progress=False).close()
    key = browser_secret(tmp_path / "index")
    assert (tmp_path / "index" / "browser-secret").stat().st_mode & 0o777 == 0o600
    Index.rebuild([corpus], tmp_path / "index", embedder=fake, progress=False).close()
    assert browser_secret(tmp_path / "index") == key  # saved conversations still readable


@pytest.mark.slow  # imports gradio
def test_llm_choice_only_with_an_llm(tmp_path: Path) -> None:
    from fakes import FakeEmbedder

    from rag import OpenAICompatible
    from rag.app.blocks import build
    from rag.app.service import Service

    def labels(llm: OpenAICompatible | None) -> list[str]:
        demo = build(Service(tmp_path / "index", None, llm=llm, embedder=FakeEmbedder()))
        return [str(getattr(b, "label", "")) for b in demo.blocks.values()]

    assert "Answer mode" not in labels(None)
    assert "Answer mode" in labels(OpenAICompatible("http://127.0.0.1:9/v1", "m"))


def test_exports_replace_their_file_instead_of_piling_up() -> None:
    from rag.app.blocks import _export_file

    first = _export_file("conv-1", "Missiles.md", "one")
    second = _export_file("conv-1", "Missiles, renamed.md", "two")
    other = _export_file("../../etc/conv-2", "Other.md", "three")
    root = first.parent.parent
    assert second.read_text(encoding="utf-8") == "two" and not first.exists()
    assert [p.name for p in second.parent.iterdir()] == ["Missiles, renamed.md"]
    # Every export sits in the one folder of this process, whatever the browser sent.
    assert other.parent.parent == root and other.read_text(encoding="utf-8") == "three"
    assert second.parent != other.parent
    assert all(len(list(folder.iterdir())) == 1 for folder in root.iterdir())  # one file each
