"""glibc allocator settings for inference on CPU (``sedx detect``, ``sed.eval``, ``sed.tune``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Serve allocations under ``threshold`` bytes from the heap and keep freed heap memory for reuse
    (glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``), for this whole process.

    By default glibc hands large blocks back with ``munmap`` when they are freed, so the activations a
    batch frees are page-faulted in again by the next batch: on our 2-core machine ``sedx detect`` on a
    60-minute file ran at 638 +- 52x real time without this and 816 +- 115x with it (5 runs of
    benchmarks/bench_detect.py), and SM+DM on batches of 32 clips (``sed.eval``) took 5.5 instead of 11 ms
    per clip. The peak resident set is the working set either way (bench_detect: 672 vs 681 MB), but the
    process no longer shrinks after a peak (``sed.eval`` at DESED's size: 1,038 vs 949 MB). Training keeps
    glibc's defaults: its steps gain nothing (0.245 vs 0.248 s). Returns False, changing nothing,
    off glibc (macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = min(int(threshold), 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))
