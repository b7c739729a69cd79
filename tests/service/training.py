"""Registering model versions fast for service tests: the training steps as plain functions, no Prefect."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mlops_core.settings import Settings
from stages.data.generator import write_batches
from tests.helpers import register_quickly


def register_model(settings: Settings, data_dir: Path, *, seed: int, rows: int = 3000) -> int:
    """Generate a few days of data, fit a logistic regression, log and register it; returns the version."""
    write_batches(data_dir, rows=rows, days=3, start=date(2026, 11, 1), seed=seed)
    return register_quickly(settings, data_dir, seed=seed).version
