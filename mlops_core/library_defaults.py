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
    # Prefect's 20 s default for its temporary server is too short on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Leases of concurrency slots (one training per model) kept on disk under PREFECT_HOME, not in the server's
    # memory: a server that restarts, or a temporary server that ends with its process, then still knows them,
    # and the slot of a training that died is freed when its lease expires instead of staying taken forever.
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
}


def apply() -> None:
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
