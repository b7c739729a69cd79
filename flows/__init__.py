"""Prefect flows: each a short list of named steps over tasks."""

import mlops_core  # noqa: F401  (switches telemetry off before any library loads)
