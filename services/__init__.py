"""The BentoML prediction service; imports no training code."""

import mlops_core  # noqa: F401  (switches telemetry off before any library loads)
