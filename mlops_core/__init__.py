"""Shared core of the project: settings, data, schemas and registry conventions used by flows and the service."""

from mlops_core.telemetry import disable_telemetry

disable_telemetry()
