"""From a training checkpoint to the shipped reader: ONNX, int8, sharded, checked.

The export is checked against torch (fp32 logits must agree), then quantized to int8
(every MatMul, and the word-embedding table, which is otherwise most of the file) and
written in shards of at most 16 MiB beside `reader.json` (threshold, window sizes,
checksums) and the tokenizer. `Reader.load(folder)` reads exactly that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rag.answering.windows import MAX_TOKENS, STRIDE, make_windows, pad
from rag.errors import RagError
from rag.training.trainer import CHECKPOINT, build_model, default_base, load_tokenizer

SHARD_BYTES = 16 * 1024 * 1024
PARITY_MAX_ABS = 1e-3  # fp32 ONNX vs torch logits; measured ~1e-5, larger means a broken export
_CHECK = [("Who wrote the report?", "The report was written by Ann Lee in 2021 for the council."),
          ("x", "y"), ("How many?", "Twelve people died and 40 were hurt. " * 12)]


def load_trained(checkpoint: Path, base: str) -> Any:
    import torch

    model = build_model(base, attn="eager")
    state = torch.load(checkpoint, weights_only=False)
    model.load_state_dict(state.get("model", state))
    model.eval()
    return model


def export_onnx(model: Any, tokenizer: Any, path: Path) -> float:
    """Export to `path` and return the largest logit difference from torch."""
    import onnxruntime as ort
    import torch

    windows = [w for q, c in _CHECK for w in make_windows(tokenizer, q, [c], MAX_TOKENS, STRIDE)]
    feed = pad(windows)
    args = tuple(torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["start_logits", "end_logits"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, "start_logits": axes,
                                        "end_logits": axes})
        ref = [t.numpy() for t in model(*args)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["start_logits", "end_logits"], feed)
    mask = feed["attention_mask"].astype(bool)
    return float(max(np.abs(g - r)[mask].max() for g, r in zip(got, ref)))


def quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=False,
                     op_types_to_quantize=["MatMul", "Gather"])


def write_shards(model: Path, folder: Path, stem: str) -> list[dict[str, Any]]:
    data = model.read_bytes()
    shards = []
    for i in range(0, len(data), SHARD_BYTES):
        part = data[i:i + SHARD_BYTES]
        name = f"{stem}.{i // SHARD_BYTES:02d}"
        (folder / name).write_bytes(part)
        shards.append({"file": name, "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()})
    return shards


def export_reader(run: str | Path, out: str | Path, *, threshold: float, int8: bool = True,
                  base: str = "", info: dict[str, Any] | None = None) -> Path:
    """Write the reader trained in `run` (its checkpoint) to `out`, replacing what is there."""
    run_dir, out_dir = Path(run), Path(out)
    ckpt = run_dir / CHECKPOINT if run_dir.is_dir() else run_dir
    if not ckpt.is_file():
        raise RagError(f"no checkpoint at {ckpt}: train first with `rag train-reader --out {run}`")
    base = base or default_base()
    model = load_trained(ckpt, base)
    tokenizer = load_tokenizer(base)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".reader-", dir=out_dir.parent))
    stage.chmod(0o755)  # mkdtemp's 0700 would hide the shipped model from other users
    if not np.isfinite(threshold):  # a model that never answers on held-out: still valid JSON
        threshold = float(np.sign(threshold)) * 1e6
    try:
        fp32 = stage / "fp32.onnx"
        diff = export_onnx(model, tokenizer, fp32)
        if diff > PARITY_MAX_ABS:
            raise RagError(f"the ONNX export differs from torch by {diff:.2e}: not shipped")
        final = fp32
        if int8:
            final = stage / "int8.onnx"
            quantize(fp32, final)
        stem = "reader-int8.onnx" if int8 else "reader.onnx"
        shards = write_shards(final, stage, stem)
        for f in (fp32, stage / "int8.onnx"):
            f.unlink(missing_ok=True)
        shutil.copy(Path(base) / "tokenizer.json", stage / "tokenizer.json")
        meta = {"format": 1, "threshold": threshold, "max_tokens": MAX_TOKENS, "stride": STRIDE,
                "int8": int8, "shards": shards, "export_max_abs_diff": diff, **(info or {})}
        (stage / "reader.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out_dir


def checkpoint_from_reader(reader: str | Path, out: str | Path, base: str = "") -> Path:
    """An exported reader's weights (int8 dequantized) as a checkpoint that `--init` takes,
    so the shipped model can be trained further without the run folder it came from.

    The export's initializers carry the exporter's names, not torch's, so a fresh model is
    exported once to learn which initializer holds which parameter (by value, transposed
    or not); the reader's values for those names are then put back into torch's.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from rag.answering.reader import read_model

    _, data = read_model(Path(reader))
    shipped = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer}
    base = base or default_base()
    model = build_model(base, attn="eager").eval()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, load_tokenizer(base), Path(tmp) / "fresh.onnx")
        fresh = {t.name: numpy_helper.to_array(t)
                 for t in onnx.load(str(Path(tmp) / "fresh.onnx")).graph.initializer}
    state = model.state_dict()
    loaded = {}
    for name, tensor in state.items():
        value = tensor.numpy()
        where = [(k, t) for k, v in fresh.items() for t in (False, True)
                 if v.shape == (value.T.shape if t else value.shape)
                 and np.array_equal(v.T if t else v, value)]
        if not where:
            continue  # not in the graph (position ids, a pooler the head never uses)
        if len(where) > 1 and len({k for k, _ in where}) > 1:
            raise RagError(f"cannot tell which exported weight is {name}: export the reader again")
        key, transposed = where[0]
        got = _dequantized(shipped, key)
        loaded[name] = torch.from_numpy(np.ascontiguousarray(got.T if transposed else got))
    if not any(k.startswith("qa.") for k in loaded) or len(loaded) < len(fresh) // 2:
        raise RagError(f"{reader} does not hold this base model's reader: "
                       "pass a checkpoint (a run folder) to --init instead")
    model.load_state_dict({**state, **loaded})
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "from_reader": str(reader)}, out_path)
    return out_path


def _dequantized(weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A weight of the int8 export in fp32: (q - zero point) x scale, or as stored."""
    if name in weights:
        return weights[name].astype(np.float32)
    q = weights.get(name + "_quantized")
    if q is None:
        raise RagError(f"the reader lacks the weight {name}: export it again")
    zero = weights[name + "_zero_point"].astype(np.float32)
    scale = weights[name + "_scale"].astype(np.float32)
    if scale.ndim == 1 and scale.size > 1 and q.ndim == 2 and scale.size != q.shape[1]:
        scale, zero = scale[:, None], zero[:, None]  # per row (a Gather table's axis 0)
    value: np.ndarray = ((q.astype(np.float32) - zero) * scale).astype(np.float32)
    return value
