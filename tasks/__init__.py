"""Prefect tasks: thin wrappers over plain functions that test without Prefect."""

import mlops_core  # noqa: F401  (switches telemetry off before any library loads)
