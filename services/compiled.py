"""What every compiled form of a pipeline shares: the guard it passes before it serves, and how it gives up.

A compiled form (``services.linear_model``, ``services.onnx_model``) serves only after it reproduced
scikit-learn's probabilities within ``TOLERANCE`` on the probe rows of ``services.probes``, scored together and
each alone; a form that cannot be built or that disagrees raises ``NotConvertible`` with a one-line reason, and
scikit-learn serves.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

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


def check_per_column(
    preprocess: ColumnTransformer, rules: list[FieldRule], allowed: dict[str, tuple[type, ...]]
) -> None:
    """Raises ``NotConvertible`` unless every column group is transformed by steps of the types ``allowed`` for
    its kind ("number", integers included, or "string"), each acting on one column at a time. A
    ``FunctionTransformer`` passes only as the identity, which a fitted ``ColumnTransformer`` puts for
    ``"passthrough"``. Columns of kinds other than number and text are refused too."""
    if any(rule.kind not in ("number", "integer", "string") for rule in rules):
        raise NotConvertible("a column of a kind other than number or text")
    kinds = {rule.name: rule.kind for rule in rules}
    for _, transformer, columns in preprocess.transformers_:
        if transformer == "drop":
            continue
        column_kinds = {"number" if kinds.get(c) == "integer" else str(kinds.get(c)) for c in columns}
        steps = _steps(transformer)
        types = allowed.get(column_kinds.pop()) if len(column_kinds) == 1 else None
        if types is None or not all(type(step) in types and _identity_if_function(step) for step in steps):
            raise NotConvertible(f"the columns {list(columns)} are not transformed one by one")


def encoder_categories(preprocess: ColumnTransformer, column: str) -> list[Any]:
    """The text values a fitted encoder of ``column`` knows (an imputer's fill value and infrequent ones too);
    none when no encoder transforms it."""
    for _, transformer, columns in preprocess.transformers_:
        if column in list(columns):
            steps = _steps(transformer)
            encoders = [step for step in steps if hasattr(step, "categories_")]
            if encoders:
                return list(encoders[-1].categories_[list(columns).index(column)])
    return []


def _steps(transformer: Any) -> list[Any]:
    return [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]


def _identity_if_function(step: Any) -> bool:
    return not isinstance(step, FunctionTransformer) or step.func is None


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
