"""Freed heap memory goes back to the operating system when a step asks for it."""

from __future__ import annotations

import sys

import numpy as np
import psutil
import pytest

from mlops_core.memory import _malloc_trim, release_free_memory

ARRAY_BYTES = 2 * 1024**2
ARRAYS = 100


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None, reason="glibc's heaps")
def test_memory_freed_inside_the_heap_is_returned() -> None:
    process = psutil.Process()
    bigger = np.ones(8 * ARRAY_BYTES // 8)
    del bigger  # a freed large mapping raises glibc's mmap threshold: the arrays below come from the heap
    arrays = [np.ones(ARRAY_BYTES // 8) for _ in range(ARRAYS)]
    del arrays[::2]  # half of them freed, in between the others: nothing at the heap's top to give back
    kept_by_the_heap = process.memory_info().rss
    release_free_memory()
    returned = kept_by_the_heap - process.memory_info().rss
    assert returned > 0.8 * (ARRAYS // 2) * ARRAY_BYTES


def test_memory_arrow_freed_is_returned() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    process = psutil.Process()
    numbers = pa.array(np.arange(ARRAY_BYTES // 8, dtype=np.int64))
    results = [pc.add(numbers, i) for i in range(ARRAYS)]  # allocated by Arrow's pool (the input is numpy's)
    del results  # freed into the pool, which keeps it for reuse
    kept_by_the_pool = process.memory_info().rss
    release_free_memory()
    assert kept_by_the_pool - process.memory_info().rss > 0.5 * ARRAYS * ARRAY_BYTES
