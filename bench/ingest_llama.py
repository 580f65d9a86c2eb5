"""`bench/ingest.py --llamaindex`: LlamaIndex's default ingestion beside ours, scored alike.

Its pipeline as a user gets it: one Document per article, `VectorStoreIndex.from_documents`
with no transformations given (so `Settings`' default SentenceSplitter), our embedder
behind `peers.llama_embedding` (the same model, runtime and precision as our build; 64
texts a call rather than LlamaIndex's default 10, so that its calls take our bulk path on
every free core, not the one-thread query path), then `persist()` to disk, as our build writes its index. Timed end
to end from reading the JSONL. hit@5 uses the existing metrics: news (`gold.jsonl` beside
the corpus) as `bench/peers.py` scores it, a gold answer string in one of the top 5
passages among those published by the question's date; BEIR (`queries.jsonl` and
`qrels/test.tsv`) as `rag bench beir` ranks documents, a judged document among the first 5.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import (
    PEER_DEPTH,
    Retriever,
    as_of_filtered,
    evaluate,
    llama_embedding,
    load_gold,
    ours,
    require_llama,
)

from rag import Index
from rag.eval.benchmarks import load_qrels, load_queries, rank_documents
from rag.eval.metrics import hit_at_k, wilson

HIT_K = 5
DOC_DEPTH = 50  # nodes asked of LlamaIndex per BEIR query, to rank HIT_K distinct documents

DocRanker = Callable[[str], list[str]]  # query -> article ids, best first


@dataclass(frozen=True)
class Row:
    """One system's line of the table."""

    system: str
    chars: int  # characters sent to the embedder while indexing
    seconds: float  # wall, end to end
    hit: dict[str, Any] | None  # {"hits", "n", "rate", "ci95"}; None: no gold for the corpus


@dataclass(frozen=True)
class Llama:
    """LlamaIndex's built index, with what building it cost."""

    index: Any
    chars: int
    texts: int
    seconds: float
    persist_seconds: float
    documents: int
    batch: int  # texts per call to the embedder (embed_batch_size)
    dates: dict[str, str]  # article id -> published date, for the as-of filter of news gold


def read_documents(corpus: Path) -> tuple[list[Any], dict[str, str]]:
    """One Document per JSONL article: its text, its id, the title as metadata.

    The title goes in metadata because that is how LlamaIndex carries one (its default
    embeds metadata with the node text); ours embeds the title with every chunk as well.
    """
    from llama_index.core import Document

    docs, dates = [], {}
    for line in corpus.open():
        if not line.strip():
            continue
        d = json.loads(line)
        ident = str(d.get("id") or d.get("_id"))
        title = d.get("title") or ""
        docs.append(Document(text=d.get("text") or "", doc_id=ident,
                             metadata={"title": title} if title else {}))
        dates[ident] = (d.get("published") or "")[:10]
    return docs, dates


def build_llama(corpus: Path, embed: Callable[[list[str]], Any], persist: Path) -> Llama:
    """LlamaIndex's default ingestion of `corpus`, timed from reading the file to disk."""
    require_llama()
    from llama_index.core import VectorStoreIndex

    embedding = llama_embedding(embed)
    t0 = time.perf_counter()
    docs, dates = read_documents(corpus)
    index = VectorStoreIndex.from_documents(docs, embed_model=embedding)
    t1 = time.perf_counter()
    index.storage_context.persist(persist_dir=str(persist))
    t2 = time.perf_counter()
    return Llama(index, embedding.embedded_chars, embedding.embedded_texts, t2 - t0, t2 - t1,
                 len(docs), embedding.embed_batch_size, dates)


def gold_kind(corpus: Path) -> str | None:
    """Which gold lies beside the corpus: 'beir' (qrels with article ids), 'news', or none."""
    if (corpus.parent / "qrels" / "test.tsv").exists() and \
            (corpus.parent / "queries.jsonl").exists():
        return "beir"
    return "news" if (corpus.parent / "gold.jsonl").exists() else None


def rate(hits: int, n: int) -> dict[str, Any]:
    """The shape `peers.evaluate` gives a hit rate, with `n` beside it."""
    lo, hi = wilson(hits, n)
    return {"hits": hits, "n": n, "rate": round(hits / n, 3) if n else 0.0,
            "ci95": [round(lo, 3), round(hi, 3)]}


def news_hits(gold: Path, retrievers: dict[str, Retriever]) -> dict[str, dict[str, Any]]:
    """hit@5 per retriever over the answerable news questions, by `peers.evaluate`."""
    questions = load_gold(gold)
    out = {}
    for name, retrieve in retrievers.items():
        res = evaluate(name, retrieve, questions)["all"]
        out[name] = {**res[f"hit@{HIT_K}"], "n": res["n"],
                     "mean_chars_top5": res["mean_chars_top5"]}
    return out


def beir_hits(root: Path, ids: set[str],
              rankers: dict[str, DocRanker]) -> dict[str, dict[str, Any]]:
    """hit@5 per ranker over the judged queries with a relevant document among `ids`.

    A `--limit` slice holds few judged documents; a query whose documents are all outside
    it could be a hit for neither system, so it is left out rather than counted a miss.
    """
    qrels = load_qrels(root / "qrels" / "test.tsv")
    wanted = [q for q, rel in qrels.items() if any(r > 0 and d in ids for d, r in rel.items())]
    queries = load_queries(root / "queries.jsonl", wanted)
    out = {}
    for name, rank in rankers.items():
        got = sum(hit_at_k([qrels[q].get(d, 0) > 0 for d in rank(text)], HIT_K)
                  for q, text in queries)
        out[name] = rate(int(got), len(queries))
    return out


def llama_documents(index: Any) -> DocRanker:
    """Article ids ranked by their best node, as `rank_documents` ranks ours."""
    retriever = index.as_retriever(similarity_top_k=DOC_DEPTH)

    def rank(query: str) -> list[str]:
        return list(dict.fromkeys(n.node.ref_doc_id for n in retriever.retrieve(query)))[:HIT_K]
    return rank


def hits(corpus: Path, ours_index: Index, llama: Llama) -> dict[str, dict[str, Any]] | None:
    """hit@5 of both systems on the gold beside `corpus`; None when it has none."""
    kind = gold_kind(corpus)
    if kind == "news":
        vector = llama.index.as_retriever(similarity_top_k=PEER_DEPTH)
        return news_hits(corpus.parent / "gold.jsonl", {
            "ours": ours(ours_index),
            "llamaindex": as_of_filtered(vector,
                                         lambda n: llama.dates.get(n.node.ref_doc_id or "", "")),
        })
    if kind == "beir":
        return beir_hits(corpus.parent, set(llama.dates), {
            "ours": lambda q: rank_documents(ours_index, q, docs=HIT_K),
            "llamaindex": llama_documents(llama.index),
        })
    return None


def over_window(index: Any, embedder: Any) -> tuple[int, int | None]:
    """How many of LlamaIndex's nodes exceed the model's window, and the window (None: unknown).

    The model encodes only a text's first `max_tokens` word pieces, so characters sent past
    them cost tokenising but are never embedded: that is why "chars embedded" alone does not
    compare the two systems' work.
    """
    from llama_index.core.schema import MetadataMode

    window = getattr(embedder, "max_tokens", None)
    if window is None or not hasattr(embedder, "count_tokens"):
        return 0, None
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in index.docstore.docs.values()]
    return sum(embedder.count_tokens(t) > window for t in texts), window


def compare(corpus: Path, built: Path, ours_index: Index, ours_chars: int, ours_seconds: float,
            embedder: Any, persist: Path) -> tuple[list[Row], str]:
    """Build LlamaIndex's default index over `built` (the file ours indexed) and score both.

    `corpus` is the original file, beside which the gold lies; `embedder` is ours, unwrapped
    (its calls here must not count as our build's). Returns the table's rows and a note on
    how LlamaIndex was configured and what its figures mean.
    """
    from llama_index.core import Settings

    llama = build_llama(built, embedder.embed, persist)
    over, window = over_window(llama.index, embedder)  # after the clock: not LlamaIndex's cost
    scored = hits(corpus, ours_index, llama) or {}
    rows = [Row("ours", ours_chars, ours_seconds, scored.get("ours")),
            Row("llamaindex default", llama.chars, llama.seconds, scored.get("llamaindex"))]
    splitter = Settings.node_parser
    note = (f"LlamaIndex: {llama.documents} documents -> {llama.texts} nodes "
            f"({type(splitter).__name__} {getattr(splitter, 'chunk_size', '?')} tokens, overlap "
            f"{getattr(splitter, 'chunk_overlap', '?')}; embed batch {llama.batch})")
    if window:
        note += (f", {over} of them over the model's {window}-token window (only their start "
                 "is embedded)")
    note += f"; persist() {llama.persist_seconds:.1f} s of its wall."
    kind = gold_kind(corpus)
    note += f"\nhit@{HIT_K}: {kind or 'no gold beside the corpus'}"
    if kind == "news" and scored:
        note += (f"; mean top-{HIT_K} passage chars ours {scored['ours']['mean_chars_top5']:,.0f}, "
                 f"llamaindex {scored['llamaindex']['mean_chars_top5']:,.0f} (a longer passage "
                 "holds an answer string more often)")
    return rows, note


def table(rows: Sequence[Row]) -> str:
    """system | chars embedded | wall s | hit@5, as markdown."""
    lines = [f"| system | chars embedded | wall s | hit@{HIT_K} |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        hit = f"{r.hit['rate']:.3f} ({r.hit['hits']}/{r.hit['n']})" if r.hit else "n/a"
        lines.append(f"| {r.system} | {r.chars:,} | {r.seconds:.1f} | {hit} |")
    return "\n".join(lines)
