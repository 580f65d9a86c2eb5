"""The `rag` command: a thin shell over the library. Flags and environment are read here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rag.app.ui import add_serve_arguments
from rag.errors import EmptyIndexError, RagError
from rag.escape import printable
from rag.options import ANSWER_MODES, SEARCH_MODES, AnswerMode, Filters
from rag.terminal import (
    SCORES_HELP,
    answer_json,
    index_summary,
    print_answer,
    print_hits,
    remove_articles,
    why_fewer,
)
from rag.training.cli import add_train_arguments

if TYPE_CHECKING:
    from rag.embed.embedder import Embedder

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
def _default_index() -> str:
    return os.environ.get("RAG_INDEX", "index")


def _embedder(args: argparse.Namespace) -> Any:
    if getattr(args, "embedder", None) is not None:
        return args.embedder  # given to main(): a test's boundary fake, or a caller's own
    from rag.embed.embedder import DEFAULT_MODEL, embedder_for

    threads = getattr(args, "threads", None) or os.environ.get("RAG_THREADS")
    bf16_env = os.environ.get("RAG_BF16", "").lower()
    bf16 = False if getattr(args, "no_bf16", False) or bf16_env in ("0", "false", "no") else None
    model = getattr(args, "model", None) or os.environ.get("RAG_MODEL") or DEFAULT_MODEL
    return embedder_for(model, threads=int(threads) if threads else None, bf16=bf16)


def _open_index(args: argparse.Namespace) -> Any:
    from rag.index.facade import Index

    given = getattr(args, "model", None) or getattr(args, "embedder", None)
    idx = Index.load(args.index, embedder=_embedder(args) if given else None)
    if getattr(args, "threads", None) or os.environ.get("RAG_THREADS") or os.environ.get("RAG_BF16"):
        # Same model as the index, with the requested runtime settings.
        from rag.embed.embedder import embedder_for

        e = _embedder(args)
        idx.embedder = embedder_for(idx.model, threads=getattr(e, "threads", None),
                                    bf16=getattr(e, "bf16", None))
    if not idx.stats().articles:
        raise EmptyIndexError(f"the index at {printable(args.index)} holds no articles yet; "
                              f"add some with `rag index FOLDER --index {printable(args.index)}`")
    return idx


def _llm(args: argparse.Namespace) -> Any:
    from rag.answering.llm import OpenAICompatible

    env = dict(os.environ)
    for flag, key in (("llm_url", "RAG_LLM_BASE_URL"), ("llm_model", "RAG_LLM_MODEL")):
        if getattr(args, flag, None):
            env[key] = getattr(args, flag)
    return OpenAICompatible.from_env(env)


def cmd_index(args: argparse.Namespace) -> int:
    from rag.index.facade import Index
    from rag.ingest.chunking import ChunkSpec

    spec = None
    if args.chunk_tokens or args.overlap is not None:
        spec = ChunkSpec(max_tokens=args.chunk_tokens or ChunkSpec().max_tokens,
                         overlap_tokens=ChunkSpec().overlap_tokens if args.overlap is None
                         else args.overlap)
    ray_address = args.ray or os.environ.get("RAG_RAY_ADDRESS")
    pipeline = None
    if ray_address:
        from rag.scale.ray_ingest import RayPipeline

        pipeline = RayPipeline(ray_address, actors=args.ray_actors)
    # A bar redrawn on a terminal, a line every few seconds in a log (rag.index.progress).
    progress = not args.quiet
    if args.rebuild:
        idx = Index.rebuild(args.paths, args.index, embedder=_embedder(args), chunking=spec,
                            kind=args.kind, progress=progress, follow_links=args.follow_links,
                            pipeline=pipeline, sentences=args.sentences)
        report = idx.last_report
        assert report is not None
    else:
        idx = Index.open(args.index, embedder=_embedder(args), chunking=spec, kind=args.kind,
                         sentences=args.sentences)
        report = idx.add(args.paths, sync=args.sync, progress=progress,
                         follow_links=args.follow_links, pipeline=pipeline)
    if args.shards:
        from rag.index.derived import reshard

        reshard(idx, args.shards)
    idx.close()
    for s in report.skipped:
        print(f"skipped {printable(s.path)}: {printable(s.reason)}", file=sys.stderr)
    print(index_summary(report), flush=True)  # a log shows it now, not at exit
    return EXIT_PARTIAL if report.skipped else EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    idx = _open_index(args)
    hits = idx.search(args.query, k=args.k, filters=_filters(args), mode=args.mode)
    why = why_fewer(idx, len(hits), args.k, _filters(args), args.mode)
    if args.json:
        keys = ("rank", "score", "article_id", "title", "published", "source", "url", "path",
                "chunk_id", "text", "start", "end", "dense", "lexical")
        print(json.dumps([{k: d[k] for k in keys} for d in map(asdict, hits)], ensure_ascii=False,
                         indent=2))
        if why:
            print(f"note: {why}", file=sys.stderr)
        return EXIT_OK
    print_hits(hits, why)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    return remove_articles(_open_index(args), args.article_ids, ask=not args.yes)


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answering.answer import answer

    idx = _open_index(args)
    llm = _llm(args)
    mode: AnswerMode = args.mode or ("llm" if llm else "extractive")
    ans = answer(args.question, idx, k=args.k, mode=mode, llm=llm,
                 filters=_filters(args))
    if args.json:
        print(json.dumps(answer_json(ans), ensure_ascii=False, indent=2))
    else:
        print_answer(ans)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    from rag.answering.answer import answer

    idx = _open_index(args)
    llm = _llm(args)
    mode: AnswerMode = args.mode or ("llm" if llm else "extractive")
    history: list[tuple[str, str]] = []
    print("Ask about the articles (empty line or Ctrl-D to quit).")
    while True:
        try:
            q = input("> ").strip()
        except EOFError:
            break
        if not q:
            break
        try:
            ans = answer(q, idx, history=history, k=args.k, mode=mode, llm=llm)
        except RagError as e:
            print(f"error: {printable(e)}")
            continue
        print_answer(ans)
        history.append((q, ans.text))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from rag.index.facade import Index

    s = Index.load(args.index).stats()
    if args.json:
        print(json.dumps(asdict(s), indent=2))
    else:
        print(f"{s.articles} articles, {s.chunks} chunks in {printable(s.path)} "
              f"({s.bytes_on_disk / 1e6:.1f} MB)"
              f"\nmodel {printable(s.model)} (dim {s.dim}), {s.kind} index, version {s.version}, "
              f"chunks of {s.chunking['max_tokens']} tokens with {s.chunking['overlap_tokens']} overlap"
              + (", sentence vectors stored" if s.sentences else ""))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.eval.runner import main as eval_main

    return int(eval_main(args))


def cmd_bench(args: argparse.Namespace) -> int:
    if args.suite == "reader":
        from rag.eval.reader_bench import bench_reader, print_reader

        result = bench_reader(args.dev or args.data, limit=args.limit or 0, model=args.reader,
                              progress=sys.stderr.isatty())
        print_reader(result)
        if args.json_out:
            with open(args.json_out, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=1)
        return EXIT_OK
    from rag.eval.benchmarks import run_bench

    run_bench(args.suite, args.data, index=args.index, json_out=args.json_out,
              report=args.report, mode=args.mode, threads=args.threads,
              progress=sys.stderr.isatty())
    return EXIT_OK


def cmd_train_reader(args: argparse.Namespace) -> int:
    from rag.training.cli import train_reader

    return train_reader(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from rag.app.ui import serve_from_args

    serve_from_args(args)
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rag", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--index", default=_default_index(), help="index folder (default: index/)")
        sp.add_argument("--threads", type=int, help="torch threads (default: all cores)")
        sp.add_argument("--no-bf16", action="store_true", help="embed in fp32 even if bf16 is fast")

    def filters(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--after", help="only articles published on/after this date (YYYY-MM-DD)")
        sp.add_argument("--before", help="only articles published on/before this date")
        sp.add_argument("--source", action="append", help="only this source (repeatable)")

    sp = sub.add_parser("index", help="build or update an index from files/folders")
    sp.add_argument("paths", nargs="+")
    common(sp)
    sp.add_argument("--sync", action="store_true", help="also remove articles whose files are gone")
    sp.add_argument("--rebuild", action="store_true", help="build from scratch (e.g. new model)")
    sp.add_argument("--follow-links", action="store_true",
                    help="also index files and folders that symbolic links lead to outside "
                         "the folders given (skipped by default, with a reason)")
    sp.add_argument("--model", help="sentence-transformers model: local path or packaged name")
    sp.add_argument("--chunk-tokens", type=int, help="max tokens per chunk (default 160)")
    sp.add_argument("--overlap", type=int, help="overlap tokens between chunks (default 40)")
    sp.add_argument("--kind", default="auto", choices=["auto", "flat", "ivf", "hnsw"])
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--sentences", action=argparse.BooleanOptionalAction,
                    help="also store every sentence's vector (a new index: default no; an "
                    "index keeps its choice, --rebuild changes it); answers do not use them")
    sp.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                    help="read, chunk and embed on a Ray cluster (default ADDRESS: local, an "
                    "in-process Ray; also RAG_RAY_ADDRESS); needs pip install \".[scale]\"")
    sp.add_argument("--ray-actors", type=int, metavar="N",
                    help="embedder actors on Ray (default: one per CPU slot, or per GPU)")
    sp.add_argument("--shards", type=int, metavar="N",
                    help="split the search files into N partitions (1: one); later writes keep N")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("search", help="print the passages that best match a query",
                        description=SCORES_HELP)
    sp.add_argument("query")
    common(sp)
    filters(sp)
    sp.add_argument("-k", type=int, default=5, help="passages to print (default 5; fewer "
                    "only where the index holds fewer, said on stderr)")
    sp.add_argument("--mode", default="hybrid", choices=SEARCH_MODES)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("remove", help="remove articles from the index by id")
    sp.add_argument("article_ids", nargs="+", metavar="ARTICLE_ID")
    common(sp)
    sp.add_argument("--yes", "-y", action="store_true",
                    help="remove without asking (needed when the input is not a terminal)")
    sp.set_defaults(func=cmd_remove)

    for name, func, help_ in (("ask", cmd_ask, "answer a question with citations"),
                              ("chat", cmd_chat, "a conversation in the terminal")):
        sp = sub.add_parser(name, help=help_)
        if name == "ask":
            sp.add_argument("question")
            sp.add_argument("--json", action="store_true")
            sp.add_argument("--as-of", help="answer as of this date (YYYY-MM-DD; default "
                            "today): later articles are not used, nearer ones preferred")
        common(sp)
        filters(sp)
        sp.add_argument("-k", type=int, default=5)
        sp.add_argument("--mode", choices=ANSWER_MODES,
                        help="default: llm when RAG_LLM_BASE_URL is set, else extractive")
        sp.add_argument("--llm-url", help="OpenAI-compatible base URL (or RAG_LLM_BASE_URL)")
        sp.add_argument("--llm-model", help="model name at that endpoint (or RAG_LLM_MODEL)")
        sp.set_defaults(func=func)

    sp = sub.add_parser("stats", help="what the index holds")
    common(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser("eval", help="evaluate against gold Q&A pairs")
    sp.add_argument("gold")
    sp.add_argument("--corpus", required=True, help="folder or JSONL of the articles")
    common(sp)
    sp.add_argument("-k", type=int, default=5)
    sp.add_argument("--json", dest="json_out", help="write the metrics JSON here")
    sp.add_argument("--report", help="write a Markdown report with plots into this folder")
    sp.add_argument("--features", action="store_true",
                    help="record each question's refusal inputs (reader margin, cosine)")
    # Without --index, eval builds its own index in the temp dir (never the product's).
    sp.set_defaults(func=cmd_eval, index=None)

    sp = sub.add_parser("bench", help="public benchmarks (BEIR, SQuAD 2.0)")
    sp.add_argument("suite", choices=["beir", "squad", "reader"],
                    help="beir: retrieval on BEIR SciFact; squad: open-setting answers on "
                    "SQuAD2-500; reader: the reader alone, gold paragraph given, on SQuAD 2.0 dev")
    sp.add_argument("data", nargs="?",
                    help="BEIR folder or SQuAD qa.jsonl (default: the copy in ../shared/datasets)")
    sp.add_argument("--dev", help="reader: SQuAD 2.0 dev JSONL (default: "
                    "../shared/datasets/squad/dev-v2.0.jsonl)")
    sp.add_argument("--limit", type=int, help="reader: an even sample of N questions")
    sp.add_argument("--reader", help="reader: model folder (default: the shipped reader)")
    sp.add_argument("--index", help="index folder (default: a temporary folder)")
    sp.add_argument("--json", dest="json_out", help="write the figures JSON here")
    sp.add_argument("--report", help="write a Markdown report with plots into this folder")
    sp.add_argument("--mode", default="hybrid", choices=SEARCH_MODES)
    sp.add_argument("--threads", type=int)
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("train-reader", help="train the reader model (needs torch; hours on a CPU)")
    add_train_arguments(sp)
    sp.set_defaults(func=cmd_train_reader)

    sp = sub.add_parser("serve", help="the chat in the browser (Gradio)")
    add_serve_arguments(sp)
    sp.set_defaults(func=cmd_serve)
    return p


def _filters(args: argparse.Namespace) -> Filters:
    """The search filters the command line asked for."""
    sources = getattr(args, "source", None)
    return Filters(published_after=getattr(args, "after", None),
                   published_before=getattr(args, "before", None),
                   sources=tuple(sources) if sources else None,
                   as_of=getattr(args, "as_of", None))


def main(argv: Sequence[str] | None = None, *, embedder: Embedder | None = None) -> int:
    """Run the `rag` command line on `argv`; returns the exit code.

    `embedder` replaces the configured model for every command (tests pass a fake)."""
    args = parser().parse_args(argv)
    args.embedder = embedder
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe must show here, not in the interpreter's exit
        return code
    except RagError as e:
        print(f"error: {printable(e)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `rag search ... | head`: the reader has what it wanted. Point stdout at devnull so
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
