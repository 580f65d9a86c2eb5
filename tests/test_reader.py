"""The shipped reader: spans that are always their passage's slice, refusals, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answering.reader import MODEL_DIR, Reader, ReaderError, Span
from rag.answering.windows import make_windows
from rag.errors import RagError

PASSAGE = ("The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It was "
           "designed by the engineering company of Gustave Eiffel and is 330 metres tall.")


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.load()


def test_reads_the_answer_span(reader: Reader) -> None:
    reading = reader.read("When was the Eiffel Tower completed?", ["It rained in Lyon.", PASSAGE])
    assert reading.best is not None
    assert "1889" in reading.best.text
    assert reading.best.passage == 1
    best = reading.best
    assert [PASSAGE, ][0][best.start:best.end] == best.text
    assert reading.spans[0] == best and reading.tokens > 0


def test_refuses_when_the_passages_do_not_answer(reader: Reader) -> None:
    reading = reader.read("Who won the 2024 Nobel Prize in Chemistry?", [PASSAGE])
    assert reading.best is None
    assert reading.margin < 0


def test_every_span_is_its_passage_slice_for_any_unicode(reader: Reader) -> None:
    passages = ["Zoë Kravitz 🎬 starred in “The Batman” (2022) — directed by Matt Reeves.",
                "東京タワーは1958年に完成した。高さは333メートルです。",
                "Ａｎｎ ｗｏｎ ｔｈｅ ｒａｃｅ ｉｎ ２０１９. Der Preis ging an Jürgen Müller‐Lüdenscheidt.",
                "e\u0301te\u0301 \u200b zero\u200dwidth ﬁnal ligature ǅ."]
    for question in ("Who directed The Batman?", "When was it completed?", "Who won?", "x"):
        reading = reader.read(question, passages)
        assert reading.spans, question
        for s in reading.spans:
            assert isinstance(s, Span)
            assert passages[s.passage][s.start:s.end] == s.text
            assert 0 <= s.start < s.end <= len(passages[s.passage])


def test_a_long_passage_is_read_whole(reader: Reader) -> None:
    filler = "The council met again on Tuesday and discussed the budget at length. " * 60
    passage = filler + "The new bridge will cost 42 million euros, the mayor said. " + filler
    windows = make_windows(reader.tokenizer, "How much will the new bridge cost?", [passage])
    assert len(windows) > 3  # longer than one window
    reading = reader.read("How much will the new bridge cost?", [passage])
    assert reading.best is not None and "42 million" in reading.best.text
    assert passage[reading.best.start:reading.best.end] == reading.best.text


@pytest.mark.parametrize("question,passages", [
    ("", [PASSAGE]), ("   ", [PASSAGE]), ("Who?", []), ("Who?", ["", "  \n\t "]),
    ("When was the tower completed? " * 200, [PASSAGE]),  # longer than a window
    ("🤔🤔🤔", [PASSAGE]), ("¿Cuándo se terminó la torre?", ["La torre se terminó en 1889."]),
])
def test_bad_input_gives_a_clear_reading(reader: Reader, question: str, passages: list[str]) -> None:
    reading = reader.read(question, passages)
    for s in reading.spans:
        assert passages[s.passage][s.start:s.end] == s.text
    if not question.strip() or not any(p.strip() for p in passages):
        assert reading.best is None and reading.spans == ()


def test_a_damaged_model_says_what_to_do(tmp_path: Path) -> None:
    for f in MODEL_DIR.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    shard = sorted(tmp_path.glob("*.onnx.*"))[0]
    shard.write_bytes(b"\0" + shard.read_bytes()[1:])
    with pytest.raises(ReaderError, match="damaged"):
        Reader.load(tmp_path)
    with pytest.raises(RagError, match="no reader model"):
        Reader.load(tmp_path / "nowhere")


def test_the_shipped_model_loads_without_torch_or_configuration() -> None:
    code = ("import sys, rag; r = rag.Reader.load(); "
            "b = r.read('Who won?', ['Ann won the race.']).best; "
            "print(b.text if b else None); print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, cwd="/")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[-2:] == ["False", "False"]


def test_shipped_model_card_matches_the_model() -> None:
    meta = json.loads((MODEL_DIR / "reader.json").read_text())
    assert sum(s["bytes"] for s in meta["shards"]) <= 60 * 1024 * 1024
    assert all(s["bytes"] <= 16 * 1024 * 1024 for s in meta["shards"])
    card = (Path(__file__).resolve().parent.parent / "docs" / "READER.md").read_text()
    assert f"{meta['threshold']:.2f}" in card
