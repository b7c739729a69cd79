"""Give freed memory back to the operating system after a step that allocated much of it.

Two allocators keep what a process frees, for reuse. Arrow's memory pool (mimalloc), which reads Parquet and
holds the join's result: after a 1M-row window read through it was freed, 154 MB stayed resident until
``release_unused``. And glibc's heaps: allocations below its mmap threshold (which rises to 32 MB once large
arrays are freed, so that many of a million-row frame's columns land in the heaps) and every thread's own arena
(at 1M rows in the middle of the fits, 0.12 GB given back by one ``malloc_trim``). Without this, the next
steps allocate their own memory beside what no live object uses. Elsewhere than glibc, the trim does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_free_memory() -> None:
    """Return the memory Arrow's pool and the process's heaps hold free to the operating system (a few ms)."""
    if "pyarrow" in sys.modules:  # nothing to release in a process that never used it
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
