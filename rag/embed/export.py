"""Exporting a sentence-transformers model to ONNX, once, into the user's cache.

The cache lives in `$RAG_CACHE_DIR`, else `$XDG_CACHE_HOME/rag`, else `~/.cache/rag`:
never inside an index folder (an index has one writer, under its lock; a model cache is
shared by every index and command). Each export sits in a folder named for the model's
files (path, sizes, modification times) and this recipe's version, so a changed model
gets a new export instead of a stale one. Files are written under a temporary name and
renamed into place: a command running beside the export sees the whole file or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.faults import checkpoint

# Bump when the export below changes: exports made by an older recipe are then redone.
RECIPE = 1
# The int8 variant: per-channel weight scales. Per-tensor scales (the first recipe) left the
# vectors at cosine 0.937 (least 0.90) from fp32 on 300 SciFact abstracts, per-channel at
# 0.995 (least 0.991), at the same speed; keeping the last layer, the attention output or
# the query/key/value projections in fp32 added < 0.001 (/work notes, issue 25).
INT8_RECIPE = "per-channel"
INT8_FILE = f"model-int8-{INT8_RECIPE}.onnx"
# fp32 ONNX must give torch's vectors: measured 1.0000 (min over the texts below) for
# all-MiniLM-L6-v2; anything under this bound is an export bug, not rounding.
PARITY_MIN_COSINE = 0.9999
# Temporaries older than this are from a killed export (one takes ~15 s), not a live one.
_STALE_TMP_SECONDS = 3600
CHECK_TEXTS = (
    "How many missiles were intercepted?",
    "x",
    "Russia claims two more ATACMS missile strikes by Ukraine and threatens retaliation; "
    "the ministry said air defences shot down both over the Crimean peninsula overnight.",
    " ".join(["A sentence long enough to be truncated at the model's limit."] * 40),
)


# Runs an ONNX file of a model folder on texts, giving unit rows: passed in by the
# embedder (`rag.embed.onnx`), which this module does not import.
RunFile = Callable[[Path, Path, Sequence[str]], np.ndarray]


class ExportError(RagError):
    """The model could not be exported, or its export does not reproduce torch."""


def cache_dir() -> Path:
    """Where exported models are kept (created on first export)."""
    if os.environ.get("RAG_CACHE_DIR"):
        return Path(os.environ["RAG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag"


def model_key(source: Path) -> str:
    """A name for this model's files as they are now: any change makes a new one."""
    files = []
    for f in sorted(source.rglob("*")):
        if f.is_file():
            st = f.stat()
            files.append([str(f.relative_to(source)), st.st_size, st.st_mtime_ns])
    blob = json.dumps([RECIPE, str(source.resolve()), files])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def exported(source: Path, name: str, *, run: RunFile, int8: bool = False) -> Path:
    """The ONNX file of the model at `source` (int8: dynamically quantized), exported now
    if the cache has none for the model's current files. `run` runs an ONNX file as the
    embedder will (`rag.embed.onnx.run_file`): a new export is checked with it."""
    folder = cache_dir() / "onnx" / model_key(source)
    fp32 = folder / "model.onnx"
    final = folder / INT8_FILE if int8 else fp32
    if final.exists():
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the model cache {folder} ({e}); set RAG_CACHE_DIR to "
                          "a writable folder, or RAG_EMBED_BACKEND=torch") from e
    _remove_stale(folder)
    if not fp32.exists():
        cosine = _export(source, name, fp32, run)
        _write_atomic(folder / "export.json", json.dumps(
            {"model": name, "source": str(source), "recipe": RECIPE, "min_cosine": cosine},
            indent=2).encode())
    if int8 and not final.exists():
        _quantize(fp32, final)
    return final


def _remove_stale(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                tmp.unlink()


def _temp(folder: Path, stem: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(name)


def _publish(tmp: Path, final: Path) -> None:
    """Make `tmp` durable, then give it its final name in one step."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def _write_atomic(final: Path, data: bytes) -> None:
    tmp = _temp(final.parent, final.stem)
    try:
        tmp.write_bytes(data)
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _export(source: Path, name: str, final: Path, run: RunFile) -> float:
    """Export with torch, check it against torch, publish it; returns the least cosine."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        # Eager attention: the SDPA path decides at trace time whether a mask is needed,
        # and a trace of an unpadded batch would then ignore padding for ever after.
        model = SentenceTransformer(str(source), device="cpu",
                                    model_kwargs={"attn_implementation": "eager"})
    except Exception as e:
        raise ExportError(f"cannot load {name} from {source} to export it ({e}); set "
                          "RAG_EMBED_BACKEND=torch to use it without ONNX") from e
    model.eval()

    class Sentence(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner({"input_ids": input_ids, "attention_mask": attention_mask,
                               "token_type_ids": token_type_ids})["sentence_embedding"]

    # Two texts of different lengths: the traced graph sees padding.
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in ST 6
    feats = prepare(list(CHECK_TEXTS[:3]))
    args = tuple(feats[k] for k in ("input_ids", "attention_mask", "token_type_ids"))
    axes = {0: "batch", 1: "tokens"}
    tmp = _temp(final.parent, final.stem)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side branches
            torch.onnx.export(
                Sentence(model), args, str(tmp), dynamo=False, opset_version=17,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["sentence_embedding"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes,
                              "token_type_ids": axes, "sentence_embedding": {0: "batch"}})
        reference = model.encode(list(CHECK_TEXTS), normalize_embeddings=True,
                                 convert_to_numpy=True)
        # The export run the way the embedder runs it, against torch's vectors.
        got = run(tmp, source, list(CHECK_TEXTS))
        cosine = float(np.min(np.sum(got * reference, axis=1)))
        if cosine < PARITY_MIN_COSINE:
            raise ExportError(f"the ONNX export of {name} differs from torch (cosine "
                              f"{cosine:.5f} < {PARITY_MIN_COSINE}); set "
                              "RAG_EMBED_BACKEND=torch to embed with torch")
        checkpoint("model_export")  # the fault tests kill here: nothing published yet
        _publish(tmp, final)
        return cosine
    except ExportError:
        raise
    except Exception as e:
        first = str(e).splitlines()[0][:300] if str(e) else ""
        raise ExportError(f"exporting {name} to ONNX failed ({type(e).__name__}: {first}); set "
                          "RAG_EMBED_BACKEND=torch to embed with torch") from e
    finally:
        tmp.unlink(missing_ok=True)


def _quantize(fp32: Path, final: Path) -> None:
    """int8 weights with a scale per output channel, activations quantized on the fly
    (ONNX Runtime's dynamic quantization; its int8 kernels use VNNI where the CPU has it)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _temp(final.parent, final.stem)
    logging.disable(logging.WARNING)  # its advice on pre-processing is for image models
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        _publish(tmp, final)
    finally:
        logging.disable(logging.NOTSET)
        tmp.unlink(missing_ok=True)
