"""Which model an index was built with: its name, and a fingerprint of its files.

A name or a path says where a model was, not what it is: the packaged default named by its
own folder is the same model, and new weights copied over an old folder are not. So an
index records `sha256:` of the model folder's files (weights, tokenizer, configuration;
not its README or licence) and compares that. The hash of a folder is remembered in the
user cache (`$RAG_CACHE_DIR/fingerprints.json`) against every file's size, modification
and change times and inode: an unchanged folder is not read again (~0.2 s for MiniLM's
90 MB), and any write to a file changes its change time, so new weights are hashed anew.
An embedder may also say its own `fingerprint` (a model that is not a folder).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rag.embed.embedder import Embedder
from rag.embed.export import INT8_RECIPE
from rag.errors import ModelMismatchError, RagError

INT8 = "+int8"  # as rag.embed.onnx names the int8 variant: other vectors, another model
_NOT_MODEL = ("readme", "license", "licence", ".")  # name prefixes of files that do not count
_CACHE = "fingerprints.json"


def model_folder(name: str) -> Path | None:
    """The folder a model name stands for (the packaged default's, or a local path)."""
    from rag.embed.embedder import resolve

    base = name[: -len(INT8)] if name.endswith(INT8) else name
    try:
        folder = Path(resolve(base))
    except RagError:  # the package holding the default model is not installed
        return None
    return folder if folder.is_dir() else None


def fingerprint(embedder: Embedder) -> str | None:
    """The fingerprint of the model behind `embedder`; None when it cannot be told (an
    embedder that is not a model folder and names none)."""
    own = getattr(embedder, "fingerprint", None)
    if isinstance(own, str):
        return own
    folder = model_folder(embedder.name)
    if folder is None:
        return None
    # The int8 recipe is part of what the vectors are: an index of another recipe's vectors
    # is refused (and says how to rebuild) like any other model.
    return folder_fingerprint(folder) + (f"{INT8}:{INT8_RECIPE}" if embedder.name.endswith(INT8) else "")


def folder_fingerprint(folder: Path) -> str:
    """`sha256:` over the names and contents of the model's files, in name order."""
    files = sorted((f for f in folder.rglob("*") if f.is_file() and not any(
        part.lower().startswith(_NOT_MODEL) or part.endswith(".md")
        for part in f.relative_to(folder).parts)), key=lambda f: f.relative_to(folder).as_posix())
    stats = [[f.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns,
              st.st_ino] for f, st in ((f, f.stat()) for f in files)]
    key = os.path.realpath(folder)
    cache = _read_cache()
    known = cache.get(key)
    if isinstance(known, dict) and known.get("files") == stats:
        return str(known["digest"])
    h = hashlib.sha256()
    for f, (rel, size, *_) in zip(files, stats):
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    digest = "sha256:" + h.hexdigest()[:32]
    cache[key] = {"files": stats, "digest": digest}
    _write_cache(cache)
    return digest


def _cache_path() -> Path:
    from rag.embed.export import cache_dir

    return cache_dir() / _CACHE


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict[str, Any]) -> None:
    path = _cache_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)  # readers see the old file or the new one
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache: hash again next time


def check(path: Path, meta: dict[str, str], embedder: Embedder) -> None:
    """Raise `ModelMismatchError` unless `embedder` is the model the index at `path` was
    built with: the same fingerprint where both have one, else the same name or folder
    (indexes written before fingerprints were recorded), and the same dimension."""
    recorded = meta.get("fingerprint")
    mine = fingerprint(embedder) if recorded else None
    if recorded and mine:
        same = mine == recorded
    else:
        same = embedder.name == meta["model"] or _same_folder(embedder.name, meta["model"])
    if same and embedder.dim == int(meta["dim"]):
        return
    if embedder.name == meta["model"] and recorded and mine and mine != recorded:
        raise ModelMismatchError(
            f"the model files at {meta['model']} changed since the index at {path} was built "
            f"(fingerprint {mine}, not {recorded}); put the old files back, or rebuild: "
            f"`rag index PATH --index {path} --rebuild --model {embedder.name}`")
    raise ModelMismatchError(
        f"the index at {path} was built with {meta['model']} (dim {meta['dim']}), not "
        f"{embedder.name} (dim {embedder.dim}); search it with that model, or rebuild: "
        f"`rag index PATH --index {path} --rebuild --model {embedder.name}`")


def _same_folder(a: str, b: str) -> bool:
    if a.endswith(INT8) != b.endswith(INT8):
        return False
    fa, fb = model_folder(a), model_folder(b)
    return fa is not None and fb is not None and os.path.samefile(fa, fb)


__all__ = ["check", "fingerprint", "folder_fingerprint", "model_folder"]
