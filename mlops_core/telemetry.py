"""Telemetry off by default: each library reads its switch at import or server start, so this runs first."""

import os

# Switches checked to work offline with the pinned versions; a user can still opt in by setting them.
_SWITCHES = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def disable_telemetry() -> None:
    for name, value in _SWITCHES.items():
        os.environ.setdefault(name, value)
