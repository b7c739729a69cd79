"""Trainings of one model take turns on a real Prefect server's concurrency limit: a training held back by another
says so and waits, and one that finds the slot free says nothing, however slowly the server answers."""

import asyncio
import logging
import threading

import pytest
from prefect import flow
from prefect.client.orchestration import PrefectClient
from prefect.concurrency.sync import concurrency

from tasks.training import TRAINING_SLOT_LEASE, TRAINING_SLOT_PREFIX, one_training_at_a_time

pytestmark = pytest.mark.usefixtures("prefect_harness")

SLOW_SERVER_SECONDS = 3.0  # longer than any notice delay a timeout-based first attempt would use


@flow(validate_parameters=False)  # the list is the test's, not a copy
def guarded_training(settings, order: list[str]) -> None:
    with one_training_at_a_time(settings):
        order.append("trained")


def _held_back(caplog) -> bool:
    return any("held back" in record.getMessage() for record in caplog.records)


def test_a_free_slot_on_a_slow_server_is_taken_without_a_held_back_notice(settings, monkeypatch, caplog):
    increment = PrefectClient.increment_concurrency_slots_with_lease

    async def slowly(self, *args, **kwargs):
        await asyncio.sleep(SLOW_SERVER_SECONDS)
        return await increment(self, *args, **kwargs)

    monkeypatch.setattr(PrefectClient, "increment_concurrency_slots_with_lease", slowly)
    order: list[str] = []
    with caplog.at_level(logging.INFO):
        guarded_training(settings, order)
    assert order == ["trained"]
    assert not _held_back(caplog)


def test_a_training_held_back_by_another_says_so_and_waits_for_it(settings, caplog):
    name = f"{TRAINING_SLOT_PREFIX}{settings.mlflow.registered_model}"
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def other_training() -> None:
        with concurrency(name, **TRAINING_SLOT_LEASE):
            holding.set()
            release.wait(timeout=60)
            order.append("other trained")

    guarded_training(settings, order)  # creates the limit (1 slot) on first use
    other = threading.Thread(target=other_training)
    other.start()
    assert holding.wait(timeout=30)
    threading.Timer(2.0, release.set).start()
    with caplog.at_level(logging.INFO):
        guarded_training(settings, order)
    other.join(timeout=30)
    assert order == ["trained", "other trained", "trained"]
    assert _held_back(caplog)
