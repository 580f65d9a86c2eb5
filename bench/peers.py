"""Passage retrieval on news beside LlamaIndex's retrievers, measured the same way.

    python bench/peers.py --index DIR [--gold GOLD.jsonl] [--articles ARTICLES.jsonl]
        [--peers default,hybrid] [--chunk-tokens N] [--cache DIR] [--json OUT]

For every answerable gold question (news-dev: `question`, `answers`, `evidence`,
`question_date`, `split`), each retriever returns its top 10 passages among the articles
published on or before the question's date (as a user asking that day would see them).
A passage is a hit when it holds a gold answer string (`rag.eval.metrics.contains_answer`);
strict: and at least half the content words of the gold evidence sentence
(`shares_evidence`). Printed per split: hit@1/5/10 with counts, and the mean passage length
(the text budget a reader gets; equal budgets make hit rates comparable).

Peers (need `pip install -e '.[peers]'`, bench-only; `hybrid` also needs
`llama-index-retrievers-bm25`, which pins PyStemmer < 3: install it in a separate environment):
- `default`: LlamaIndex's VectorStoreIndex retriever over SentenceSplitter nodes
  (`--chunk-tokens`, default 320 cl100k tokens: about our 1,600-character passages; its
  default of 1,024 would give each passage three times our text), embedded with the same
  model as the index (all-MiniLM-L6-v2 from the wheel);
- `hybrid`: its QueryFusionRetriever (reciprocal rerank, one query: no LLM) over that
  vector retriever and its BM25Retriever.
Node embeddings are cached under `--cache` (they are the slow part). The as-of filter is
applied to each retriever's top 200 (LlamaIndex's simple vector store has no date filter).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag import Filters, Index
from rag.eval.metrics import contains_answer, shares_evidence, wilson

SHARED = Path(__file__).resolve().parent.parent.parent / "shared/datasets/news-dev"
K = 10
PEER_DEPTH = 200  # peers' candidates before the as-of filter (their stores cannot filter dates)

Retriever = Callable[[str, str], list[str]]  # (question, as-of ISO date) -> passage texts


@dataclass(frozen=True)
class Question:
    text: str
    answers: tuple[str, ...]
    evidence: str
    as_of: str
    split: str


def load_gold(path: Path) -> list[Question]:
    """Answerable questions with their as-of date (`2023/06/01` -> `2023-06-01`)."""
    out = []
    for line in path.open():
        d = json.loads(line)
        if d.get("unanswerable") or not d.get("answers"):
            continue
        out.append(Question(d["question"], tuple(d["answers"]), d.get("evidence") or "",
                            d["question_date"].replace("/", "-"), d.get("split", "all")))
    return out


def evaluate(name: str, retrieve: Retriever, gold: Sequence[Question]) -> dict[str, Any]:
    """hit@1/5/10 (plain and strict) per split, with counts; mean passage chars at k=5."""
    rows = []
    t0 = time.perf_counter()
    for q in gold:
        texts = retrieve(q.text, q.as_of)[:K]
        plain = [contains_answer(t, q.answers) for t in texts]
        strict = [p and shares_evidence(t, q.evidence) for p, t in zip(plain, texts)]
        rows.append((q.split, plain, strict, [len(t) for t in texts[:5]]))
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"retriever": name, "seconds": round(seconds, 1)}
    for split in [*sorted({r[0] for r in rows}), "all"]:
        part = [r for r in rows if split in ("all", r[0])]
        n = len(part)
        res: dict[str, Any] = {"n": n}
        for k in (1, 5, 10):
            for kind, idx in (("hit", 1), ("strict", 2)):
                got = sum(any(r[idx][:k]) for r in part)
                lo, hi = wilson(got, n)
                res[f"{kind}@{k}"] = {"hits": got, "rate": round(got / n, 3) if n else 0.0,
                                      "ci95": [round(lo, 3), round(hi, 3)]}
        lengths = [x for r in part for x in r[3]]
        res["mean_chars_top5"] = round(float(np.mean(lengths)), 0) if lengths else 0.0
        out[split] = res
    return out


def ours(index: Index) -> Retriever:
    def retrieve(question: str, as_of: str) -> list[str]:
        return [h.text for h in index.search(question, k=K,
                                             filters=Filters(published_before=as_of))]
    return retrieve


def require_llama() -> None:
    """Fail at once, saying what to install, when LlamaIndex is missing (a bench-only extra)."""
    from importlib.util import find_spec

    # Looked up, not imported: its import holds ~90 MB, which the build's peak RSS measured
    # beside it (`bench/ingest.py`) would count as ours.
    if find_spec("llama_index") is None or find_spec("llama_index.core") is None:
        raise SystemExit("LlamaIndex is not installed: pip install -e '.[peers]' "
                         "(a bench-only extra)")


def llama_embedding(embed: Callable[[list[str]], np.ndarray]) -> Any:
    """Our embedder behind LlamaIndex's BaseEmbedding interface: the same model on both sides.

    Counts the texts and characters LlamaIndex sends for indexing (`embedded_texts`,
    `embedded_chars`); query embeddings are not counted.
    """
    from llama_index.core.embeddings import BaseEmbedding

    class Embedding(BaseEmbedding):  # type: ignore[misc]
        embedded_texts: int = 0
        embedded_chars: int = 0

        def _texts(self, texts: list[str]) -> list[list[float]]:
            self.embedded_texts += len(texts)
            self.embedded_chars += sum(len(t) for t in texts)
            return [v.tolist() for v in embed(list(texts))]

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in embed([query])[0]]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._texts([text])[0]

        # LlamaIndex hands over `embed_batch_size` texts at a time; without this override
        # BaseEmbedding would embed them one by one, which is not its default pipeline's cost.
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._texts(texts)

    # 64 texts a call, not LlamaIndex's default 10: our embedder runs calls of fewer than 32
    # texts as queries (one thread), so at 10 LlamaIndex would index on one core of two.
    return Embedding(embed_batch_size=64)


def as_of_filtered(retriever: Any, published: Callable[[Any], str]) -> Retriever:
    """A LlamaIndex retriever's top K among passages published on or before the as-of date.

    Its simple vector store cannot filter dates, so this filters the retriever's own
    candidates (ask it for PEER_DEPTH); `published(node_with_score)` gives a node's date.
    """
    from llama_index.core.schema import QueryBundle

    def retrieve(question: str, as_of: str) -> list[str]:
        found = retriever.retrieve(QueryBundle(question))
        return [n.node.get_content() for n in found if published(n) <= as_of][:K]
    return retrieve


def llama_peers(articles: Path, embed: Callable[[list[str]], np.ndarray], chunk_tokens: int,
                cache: Path, which: Sequence[str]) -> dict[str, Retriever]:
    """LlamaIndex's default vector retriever and its BM25 + vector fusion over its own nodes."""
    require_llama()
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.retrievers import QueryFusionRetriever

    from rag.ingest.chunking import encoding

    docs = []
    for line in articles.open():
        d = json.loads(line)
        docs.append(Document(text=d["text"], doc_id=str(d["id"]),
                             metadata={"title": d.get("title") or "",
                                       "published": (d.get("published") or "")[:10]}))
    enc = encoding()
    # cl100k tokens, as our chunker counts (LlamaIndex's default tokenizer would download it).
    splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=min(200, chunk_tokens // 5),
                                tokenizer=lambda t: enc.encode(t, disallowed_special=()))
    nodes = splitter.get_nodes_from_documents(docs)
    # What LlamaIndex embeds by default: the metadata header and the node text.
    texts = [n.get_content(metadata_mode="embed") for n in nodes]
    key = hashlib.sha256("\n\0".join(texts).encode()).hexdigest()[:16]
    path = cache / f"llama-{chunk_tokens}-{key}.npy"
    if path.exists():
        vecs = np.load(path)
    else:
        t = time.perf_counter()
        vecs = embed(texts)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vecs)
        print(f"embedded {len(texts)} LlamaIndex nodes in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
    for n, v in zip(nodes, vecs):
        n.embedding = [float(x) for x in v]
    vindex = VectorStoreIndex(nodes, embed_model=llama_embedding(embed))
    vector = vindex.as_retriever(similarity_top_k=PEER_DEPTH)

    def dated(retriever: Any) -> Retriever:
        return as_of_filtered(retriever, lambda n: n.node.metadata.get("published") or "")

    out: dict[str, Retriever] = {}
    if "default" in which:
        out["llamaindex-default"] = dated(vector)
    if "hybrid" in which:
        try:
            from llama_index.retrievers.bm25 import BM25Retriever
        except ImportError as e:
            # Not in the `peers` extra: it pins PyStemmer < 3, which would change our BM25.
            raise SystemExit("the hybrid peer needs llama-index-retrievers-bm25: pip install it "
                             "in a separate environment (it downgrades PyStemmer), or pass "
                             "--peers default") from e

        bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=PEER_DEPTH)
        from llama_index.core.llms import MockLLM

        # One query: no LLM writes extra queries (MockLLM only satisfies the constructor).
        fusion = QueryFusionRetriever([vector, bm25], llm=MockLLM(),
                                      mode="reciprocal_rerank",
                                      similarity_top_k=PEER_DEPTH, num_queries=1,
                                      use_async=False)
        out["llamaindex-hybrid"] = dated(fusion)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", required=True)
    p.add_argument("--gold", type=Path, default=SHARED / "gold.jsonl")
    p.add_argument("--articles", type=Path, default=SHARED / "articles.jsonl")
    p.add_argument("--peers", default="default,hybrid", help="comma list; '' for ours only")
    p.add_argument("--chunk-tokens", type=int, default=320)
    p.add_argument("--cache", type=Path, default=Path("/tmp/rag-peers"))
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if not args.gold.exists():
        print(f"skipped: {args.gold} not found")
        return 0
    gold = load_gold(args.gold)
    index = Index.load(args.index)
    retrievers: dict[str, Retriever] = {"ours": ours(index)}
    which = [w for w in args.peers.split(",") if w]
    if which:
        retrievers.update(llama_peers(args.articles, index.embedder.embed, args.chunk_tokens,
                                      args.cache, which))
    results = [evaluate(name, r, gold) for name, r in retrievers.items()]
    print("| retriever | split | n | hit@1 | hit@5 | hit@10 | strict@5 | chars/passage |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for res in results:
        for split in [s for s in res if isinstance(res[s], dict)]:
            r = res[split]
            cells = [f"{r[m]['rate']:.3f} ({r[m]['hits']})" for m in ("hit@1", "hit@5", "hit@10")]
            print(f"| {res['retriever']} | {split} | {r['n']} | {' | '.join(cells)} | "
                  f"{r['strict@5']['rate']:.3f} ({r['strict@5']['hits']}) | "
                  f"{r['mean_chars_top5']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
