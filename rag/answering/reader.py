"""The reader: a small transformer that reads passages and returns the answer span, or none.

    from rag import Reader
    reading = Reader.load().read("Who won?", ["Ann won the race.", "It rained."])
    reading.best  # Span(text='Ann', passage=0, start=0, end=3, score=...) or None

The shipped model (`rag/answering/reader_model/`, trained here: docs/READER.md) is an
int8 ONNX encoder with a start/end span head, run by ONNX Runtime with the fast tokenizer;
torch is never imported. Each passage is read in overlapping windows (`windows.py`), each
window's best spans are scored against its own "no answer" score (`spans.py`), and the
question is answered only when the best span's margin clears the model's threshold.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.spans import MAX_ANSWER_TOKENS, rank, window_candidates
from rag.answering.windows import MAX_TOKENS, STRIDE, Window, make_windows, pad, untruncated
from rag.errors import RagError

MODEL_DIR = Path(__file__).with_name("reader_model")
BATCH = 8  # windows per forward pass: larger batches measured no faster on 2 cores


class ReaderError(RagError):
    """The reader model is missing or damaged."""


@dataclass(frozen=True)
class Span:
    """An answer found in `passages[passage][start:end]` (== `text`, always).

    `score` is the span's margin over "no answer" in the window that read it (logits):
    above the reader's threshold, the reader answers with it.
    """

    text: str
    passage: int
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Reading:
    """What the reader made of a question: `best` (None = the passages do not answer),
    every candidate span best first, the threshold used and how many tokens were read."""

    best: Span | None
    spans: tuple[Span, ...]
    threshold: float
    tokens: int
    encoder_ms: float = 0.0  # of the read's time, what the model's forward passes took

    @property
    def margin(self) -> float:
        """The best span's score minus the threshold (-inf when nothing was read)."""
        return self.spans[0].score - self.threshold if self.spans else float("-inf")


def read_model(folder: Path) -> tuple[dict[str, Any], bytes]:
    """(reader.json, the ONNX bytes) of an exported reader, every shard's checksum checked."""
    meta_path = folder / "reader.json"
    if not meta_path.is_file():
        raise ReaderError(f"no reader model at {folder} (reader.json missing): pass the folder "
                          "that `rag train-reader --out` wrote, or reinstall rag")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    parts = []
    for shard in meta["shards"]:
        path = folder / shard["file"]
        if not path.is_file():
            raise ReaderError(f"the reader model at {folder} lacks {shard['file']}: "
                              "reinstall rag or export the model again")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            raise ReaderError(f"{path} is damaged (checksum mismatch): reinstall rag or "
                              "export the model again")
        parts.append(data)
    return meta, b"".join(parts)


class Reader:
    """An extractive reader; `Reader.load()` gives the shipped one."""

    def __init__(self, session: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.threshold = float(meta["threshold"])
        self.max_tokens = int(meta.get("max_tokens", MAX_TOKENS))
        self.stride = int(meta.get("stride", STRIDE))
        self.max_answer_tokens = int(meta.get("max_answer_tokens", MAX_ANSWER_TOKENS))

    @classmethod
    def load(cls, path: str | Path | None = None, *, threads: int | None = None) -> Reader:
        """The reader model in `path` (default: the shipped one), ready to read."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(path) if path is not None else MODEL_DIR
        meta, model = read_model(folder)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types for a bad file
            raise ReaderError(f"cannot load the reader model at {folder} ({e}): reinstall rag "
                              "or export the model again") from e
        tokenizer = untruncated(Tokenizer.from_file(str(folder / "tokenizer.json")))
        return cls(session, tokenizer, meta)

    def read(self, question: str, passages: Sequence[str], *,
             threshold: float | None = None) -> Reading:
        """Read every passage for `question`; `best` is None when none of them answers."""
        limit = self.threshold if threshold is None else threshold
        if not question.strip() or not any(p.strip() for p in passages):
            return Reading(None, (), limit, 0)
        windows = make_windows(self.tokenizer, question, list(passages), self.max_tokens, self.stride)
        if not windows:
            return Reading(None, (), limit, 0)
        t0 = time.perf_counter()
        start, end = self.logits(windows)
        encoder_ms = 1000 * (time.perf_counter() - t0)
        ranked = rank(window_candidates(windows, start, end, self.max_answer_tokens))
        # An answer never runs across a line break (a headline into its story, one list
        # item into the next): such spans are dropped, not cut.
        spans = tuple(Span(text, c.passage, c.start, c.end, c.score) for c in ranked
                      if "\n" not in (text := passages[c.passage][c.start:c.end]))
        best = spans[0] if spans and spans[0].score > limit else None
        return Reading(best, spans, limit, sum(len(w.ids) for w in windows), encoder_ms)

    def logits(self, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) logits for every window, (windows, longest window) in shape."""
        width = max(len(w.ids) for w in windows)
        start = np.full((len(windows), width), -1e4, dtype=np.float32)
        end = start.copy()
        # Similar lengths share a batch, so little is spent on padding.
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
        for b in range(0, len(order), BATCH):
            rows = order[b:b + BATCH]
            feed = pad([windows[i] for i in rows])
            n = feed["input_ids"].shape[1]
            s, e = self.session.run(["start_logits", "end_logits"], feed)
            for r, i in enumerate(rows):
                start[i, :n] = s[r]
                end[i, :n] = e[r]
        return start, end


_shared: dict[str, Reader] = {}
_lock = threading.Lock()


def shared_reader(path: str | Path | None = None) -> Reader:
    """One loaded reader per model folder for the whole process (loading takes ~0.2 s)."""
    key = str(Path(path).resolve()) if path is not None else ""
    with _lock:
        if key not in _shared:
            _shared[key] = Reader.load(path)
        return _shared[key]
