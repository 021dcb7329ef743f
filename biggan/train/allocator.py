"""Keep freed activation memory inside the process on CPU instead of returning it to the OS.

glibc serves every allocation above its mmap threshold (at most 32 MB with its dynamic rule)
with a fresh mmap and unmaps it on free, so each large activation of every phase is
page-faulted in and zeroed by the kernel again: at ch 32, batch 64 that was a quarter of a
training step's CPU time, in the kernel (docs/performance.md). Raising the mmap and trim
thresholds lets freed blocks be reused from the heap, as the caching allocators of GPU
frameworks do. A no-op where the C library is not glibc.

Process-wide state, so it is set once where a process that trains on CPU starts, never by the
training step (which any thread may build): a Ray worker's entry, `launch_training`'s in-process
path, the `biggan` command's entry for the commands that train, and the step benchmarks. The
step's time and memory figures (docs/performance.md) are measured with it in effect. Idempotent:
setting the same thresholds again changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap; up to 1 GiB of free memory at its top is kept.
_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if they are in effect."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (macOS, musl): nothing to tune
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
