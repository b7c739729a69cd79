"""The online-store write's thread runs at a lower priority than the fits beside it; the caller's is unchanged."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from tasks.features import at_low_priority


def own_niceness() -> tuple[int, int]:
    thread = threading.get_native_id()
    return thread, os.getpriority(os.PRIO_PROCESS, thread)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_the_work_runs_in_its_own_thread_at_the_given_niceness() -> None:
    caller = own_niceness()
    worker_thread, worker_niceness = at_low_priority(own_niceness, 7 + caller[1])
    assert worker_thread != caller[0] and worker_niceness == 7 + caller[1]
    assert own_niceness() == caller  # the calling (task runner's) thread keeps its priority


def test_zero_runs_in_the_calling_thread() -> None:
    assert at_low_priority(own_niceness, 0) == own_niceness()


def test_an_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("online store unavailable")

    with pytest.raises(ValueError, match="online store unavailable"):
        at_low_priority(fail, 5)
