"""At most ``max_parallel_candidates`` candidates fit at once in a process: the others wait for a slot."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tasks.training import fit_slots


def test_fits_beyond_the_limit_wait_for_a_slot() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def fit() -> None:
        nonlocal running, most
        with fit_slots(2):  # each task run asks for the slots of its limit: the same ones
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1

    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(fit) for _ in range(3)]:
            future.result()
    assert most == 2
    assert fit_slots(2) is fit_slots(2) and fit_slots(3) is not fit_slots(2)
