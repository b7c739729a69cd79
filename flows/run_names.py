"""Flow-run names that say what each run is (``train 2026-11-30 window 5d``, ``retrain after drift (share 0.56)``,
``monitor 2026-11-30 05:00``), instead of Prefect's random ones.

Each flow passes one of the ``*_run_name`` callables as ``flow_run_name``; Prefect calls it when the run starts
(replacing any name the run was created with), and it reads the run's parameters and scheduled start from
``prefect.runtime``. The text itself comes from the plain functions below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect.runtime import flow_run

from mlops_core.settings import get_settings

_MINUTE = "%Y-%m-%d %H:%M"


def training_name(started: datetime, window_days: int | None, reason: str | None) -> str:
    if reason:
        return f"retrain after {reason}"
    return f"train {started:%Y-%m-%d} window {f'{window_days}d' if window_days else 'all'}"


def monitoring_name(started: datetime, window_hours: float | None) -> str:
    window = f" window {window_hours:g}h" if window_hours else ""
    return f"monitor {started:{_MINUTE}}{window}"


def ab_evaluation_name(started: datetime, auto: bool | None) -> str:
    mode = "" if auto is None else (" (acting)" if auto else " (recommending)")
    return f"ab-evaluate {started:{_MINUTE}}{mode}"


def promotion_name(version: int, force: bool, alias: str | None) -> str:
    target = f" to {alias}" if alias else ""
    return f"{'force-promote' if force else 'promote'} v{version}{target}"


def rollback_name(to_version: int | None) -> str:
    return f"rollback to v{to_version}" if to_version is not None else "rollback to the previous champion"


def feature_update_name(updates: list[dict[str, Any]]) -> str:
    return f"update {len(updates)} {'entity' if len(updates) == 1 else 'entities'}"


def _started() -> datetime:
    """The run's scheduled start: what a scheduled run is about, even when it starts late."""
    return flow_run.scheduled_start_time


def training_run_name() -> str:
    parameters = flow_run.parameters
    window_days = parameters.get("window_days") or get_settings().data.window_days
    return training_name(_started(), window_days, parameters.get("reason"))


def monitoring_run_name() -> str:
    return monitoring_name(_started(), flow_run.parameters.get("window_hours"))


def ab_evaluation_run_name() -> str:
    return ab_evaluation_name(_started(), flow_run.parameters.get("auto"))


def promotion_run_name() -> str:
    parameters = flow_run.parameters
    return promotion_name(parameters["version"], parameters.get("force", False), parameters.get("alias"))


def rollback_run_name() -> str:
    return rollback_name(flow_run.parameters.get("to_version"))


def feature_update_run_name() -> str:
    return feature_update_name(flow_run.parameters["updates"])
