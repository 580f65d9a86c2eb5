import json
import subprocess
import sys

import rag


def test_public_surface_is_what_we_mean():
    assert rag.__all__ == sorted([
        "Answer", "Article", "ChunkSpec", "Citation", "Embedder", "Hit", "Index", "IndexReport",
        "IndexStats", "OpenAICompatible", "RagError", "Reader", "Reading", "SentenceTransformerEmbedder",
        "Filters", "Skipped", "Span", "answer", "answer_stream",
    ])
    for name in rag.__all__:
        assert getattr(rag, name) is not None


def test_import_is_light():
    code = ("import sys, json, rag; from rag import OpenAICompatible; "
            "OpenAICompatible('http://127.0.0.1:9/v1', 'm'); "
            "print(json.dumps([m for m in ('torch','sentence_transformers','faiss','gradio',"
            "'bm25s','transformers','tiktoken','openai','httpx') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_errors_share_one_base():
    from rag import errors

    for name in ("IndexNotFoundError", "ModelMismatchError", "IndexLockedError",
                 "IndexWriteError", "InputError", "LLMError", "IndexCorruptError"):
        assert issubclass(getattr(errors, name), rag.RagError)


def test_answer_is_the_function_even_after_submodules_load():
    code = ("import rag.cli, rag.app.ui, rag.eval.runner; from rag import answer, answer_stream; "
            "print(callable(answer) and callable(answer_stream) and answer.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "answer"
