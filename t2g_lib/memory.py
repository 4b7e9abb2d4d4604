"""Handing freed memory back to the operating system between stages.

A run through ``execute_in_process`` (``t2g distill``) holds every stage in one process. Python
frees a stage's arrays when it ends, but glibc's allocator keeps the freed pages, so the next
stage starts on top of the last one's peak (2.4-4 GiB carried over on TPC-H SF0.3). Collecting
the cycles, releasing PyArrow's pool and trimming the heap returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory(collect: bool = True) -> bool:
    """Collect garbage and return the free pages of the heap and of PyArrow's memory pool to the
    OS; whether the heap was trimmed. PyArrow allocates parquet reads and DuckDB's Arrow
    results from its own pool (mimalloc), which keeps freed pages for reuse: after TPC-H
    SF0.3's ``column_tokens`` it held 0.7 GiB that no object used (2.7 GiB at SF1).
    ``collect=False`` skips the garbage collection, for callers whose temporaries are freed
    by reference counting: a full collection walks every live object (a quarter of a second
    in a pretraining run on Lahman, 20 times a run)."""
    if collect:
        gc.collect()
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    return bool(trim is not None and trim(0))
