"""Question + passage windows for the reader, with character offsets back into the passage.

One piece of code for training and for reading, so the model is read exactly as it was
trained. A window is `[CLS] question [SEP] passage tokens [SEP]`; a passage longer than one
window is read in several, each overlapping the last by `stride` tokens, so every token is
seen with some context on both sides. Offsets come from the fast tokenizer's alignment, so
`passage[start:end]` is always the text a span of tokens covers, whatever the Unicode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_TOKENS = 192  # a SQuAD paragraph or a news chunk fits in one or two windows
STRIDE = 64  # tokens shared by neighbouring windows of one passage
MAX_QUESTION_TOKENS = 48


class Encoding(Protocol):
    ids: list[int]
    offsets: list[tuple[int, int]]


class Tokenizer(Protocol):
    """What `tokenizers.Tokenizer` offers and the reader uses."""

    def encode_batch(self, inputs: list[Any], add_special_tokens: bool = ...) -> list[Any]: ...

    def token_to_id(self, token: str) -> int | None: ...


def untruncated(tokenizer: Any) -> Any:
    """`tokenizer` with its saved truncation and padding switched off (the packaged
    sentence model's tokenizer.json pads and cuts every text to 128 tokens; windows are
    cut here, by token, instead)."""
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@dataclass(frozen=True)
class Window:
    """One model input: `ids`/`types`, and for each context token its passage and offsets.

    `context_start` is the position of the first passage token in `ids`; token
    `context_start + i` covers `passage[offsets[i][0]:offsets[i][1]]`.
    """

    passage: int
    ids: tuple[int, ...]
    types: tuple[int, ...]
    context_start: int
    offsets: tuple[tuple[int, int], ...]


def make_windows(tokenizer: Tokenizer, question: str, passages: Sequence[str],
                 max_tokens: int = MAX_TOKENS, stride: int = STRIDE) -> list[Window]:
    """Every window of every passage, in passage order; empty passages give none."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError("the reader's tokenizer lacks [CLS]/[SEP]: it is not a BERT tokenizer")
    encoded = tokenizer.encode_batch([question, *passages], add_special_tokens=False)
    q_ids = list(encoded[0].ids[:MAX_QUESTION_TOKENS])
    head = (cls_id, *q_ids, sep_id)
    room = max_tokens - len(head) - 1
    step = max(room - stride, 1)
    out = []
    for p, enc in enumerate(encoded[1:]):
        ids, offsets = enc.ids, enc.offsets
        start = 0
        while start < len(ids):
            end = min(start + room, len(ids))
            body = tuple(ids[start:end])
            out.append(Window(p, (*head, *body, sep_id), (0,) * len(head) + (1,) * (len(body) + 1),
                              len(head), tuple((int(a), int(b)) for a, b in offsets[start:end])))
            if end == len(ids):
                break
            start += step
    return out


def answer_tokens(window: Window, start_char: int, end_char: int) -> tuple[int, int] | None:
    """Positions in `window.ids` of the first and last token of the answer, or None if the
    window does not hold all of it (the model is then taught the [CLS] "no answer")."""
    offs = window.offsets
    if not offs or start_char < offs[0][0] or end_char > offs[-1][1]:
        return None
    first = next((i for i, (a, b) in enumerate(offs) if b > start_char), None)
    last = next((i for i in range(len(offs) - 1, -1, -1) if offs[i][0] < end_char), None)
    if first is None or last is None or last < first:
        return None
    return window.context_start + first, window.context_start + last


def pad(windows: Sequence[Window]) -> dict[str, Any]:
    """The model's inputs for `windows`, padded to the longest (dynamic padding)."""
    import numpy as np

    n = max(len(w.ids) for w in windows)
    ids = np.zeros((len(windows), n), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for r, w in enumerate(windows):
        ids[r, :len(w.ids)] = w.ids
        types[r, :len(w.ids)] = w.types
        mask[r, :len(w.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
