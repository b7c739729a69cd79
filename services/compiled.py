"""What every compiled form of a pipeline shares: the guard it passes before it serves, and how it gives up.

A compiled form (``services.linear_model``, ``services.onnx_model``) serves only after it reproduced
scikit-learn's probabilities within ``TOLERANCE`` on the probe rows of ``services.probes``, scored together and
each alone; a form that cannot be built or that disagrees raises ``NotConvertible`` with a one-line reason, and
scikit-learn serves.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np

from services.inputs import Columns, FieldRule, frame_of
from services.probes import probe_rows

# Largest allowed difference between a compiled form's and scikit-learn's probability of any class on a probe row.
TOLERANCE = 1e-6


class NotConvertible(ValueError):
    """The pipeline cannot be served by a compiled form with the same answers; scikit-learn serves it."""


class Uncompiled(ArithmeticError):
    """Rows a compiled form cannot score as scikit-learn does (a number beyond its arithmetic): scikit-learn
    scores them."""


class Compiled(Protocol):
    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray: ...

    def predict_columns(self, columns: Columns) -> np.ndarray: ...


def one_line(exc: Exception) -> str:
    """The reason readiness shows: converters and ONNX Runtime raise multi-line messages, often long."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


C = TypeVar("C", bound=Compiled)


def agreeing(compiled: C, pipeline: Any, rules: list[FieldRule], runtime: str) -> C:
    """``compiled``, once it gave scikit-learn's probabilities on the probe rows within ``TOLERANCE``."""
    rows = probe_rows(pipeline, rules)
    try:
        served = compiled.predict_proba(rows)
        # Each row alone too: a request's single row may take another path through the form (the linear one's).
        alone = np.vstack([compiled.predict_proba([row]) for row in rows])
    except Exception as exc:  # whatever the compiled form cannot score, scikit-learn serves
        raise NotConvertible(f"{runtime} failed on probe rows: {one_line(exc)}") from exc
    expected = pipeline.predict_proba(frame_of(rows, rules))
    difference = max(float(np.abs(served - expected).max()), float(np.abs(alone - expected).max()))
    if not difference <= TOLERANCE:
        raise NotConvertible(f"{runtime} differs from scikit-learn by {difference:.3g} on probe rows")
    return compiled
