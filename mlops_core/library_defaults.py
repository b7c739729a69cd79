"""Defaults for the libraries' own environment switches, applied before any of them is imported.

Telemetry is off (each switch checked to work offline with the pinned versions), and Prefect's temporary
server gets time to start on a small machine. A user can still override any of them in the environment.
"""

import os

_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # The default 20 s is tight on 2 cores when the temporary server creates a new database.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def apply() -> None:
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
