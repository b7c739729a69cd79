"""Checking request rows against the served model's signature and its training profile.

Rules are built once per model version, so the per-request work is a few type checks per field. Every
problem is reported with the field it concerns; nothing is coerced silently (a string never becomes a number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature

from mlops_core.profile import CategoricalProfile, DatasetProfile, NumericProfile

Kind = Literal["number", "integer", "string", "boolean"]
_KINDS: dict[str, Kind] = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
}


class NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` tokens parse to, so the check can name their field."""

    def __init__(self, token: str) -> None:
        self.token = token


@dataclass(frozen=True)
class FieldRule:
    name: str
    kind: Kind
    required: bool
    low: float | None = None
    high: float | None = None
    categories: frozenset[str] | None = None


@dataclass
class Problem:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class UnsupportedModel(ValueError):
    """The model's signature uses a type the service cannot check; such a version is not served."""


def build_rules(signature: ModelSignature | None, profile: DatasetProfile | None, headroom: float) -> list[FieldRule]:
    """One rule per input column, in signature order, with its allowed range from the training profile."""
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        raise UnsupportedModel("the model has no named input signature")
    rules = []
    for spec in signature.inputs.inputs:
        type_name = getattr(spec.type, "name", str(spec.type))
        kind = _KINDS.get(type_name)
        if kind is None:
            raise UnsupportedModel(f"column {spec.name!r} has type {type_name!r}, which the service cannot check")
        column = profile.columns.get(spec.name) if profile else None
        low = high = None
        categories = None
        if isinstance(column, NumericProfile) and column.min is not None and column.max is not None:
            margin = headroom * (column.max - column.min)
            low, high = column.min - margin, column.max + margin
            if column.min >= 0:
                low = max(low, 0.0)
        elif isinstance(column, CategoricalProfile) and column.other_fraction == 0 and column.frequencies:
            categories = frozenset(column.frequencies)
        rules.append(FieldRule(spec.name, kind, spec.required, low, high, categories))
    return rules


def _check(rule: FieldRule, value: Any, where: str) -> tuple[Any, Problem | None, Problem | None]:
    """(clean value, error, out-of-range note) for one field."""
    if value is None:
        if rule.required:
            return None, Problem(where, "must not be null"), None
        return (np.nan if rule.kind in ("number", "integer") else None), None, None
    if isinstance(value, NonFinite):
        return None, Problem(where, f"{value.token} is not a finite number"), None
    if rule.kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            got = "a string" if isinstance(value, str) else type(value).__name__
            return None, Problem(where, f"expected a number, got {got}"), None
        try:
            number = float(value)  # an integer beyond float range (1e400 written out) overflows
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            return None, Problem(where, "is not a finite number"), None
        if rule.kind == "integer" and not number.is_integer():
            return None, Problem(where, "expected an integer"), None
        if rule.low is not None and rule.high is not None and not rule.low <= number <= rule.high:
            note = f"{number:.6g} is far outside the training range (allowed {rule.low:.6g} to {rule.high:.6g})"
            return number, None, Problem(where, note)
        return number, None, None
    if rule.kind == "string":
        if not isinstance(value, str):
            return None, Problem(where, f"expected a string, got {type(value).__name__}"), None
        if rule.categories is not None and value not in rule.categories:
            return value, None, Problem(where, f"{value!r} is a category never seen in training")
        return value, None, None
    if not isinstance(value, bool):
        return None, Problem(where, f"expected true or false, got {type(value).__name__}"), None
    return value, None, None


def check_row(
    raw: Any, rules: list[FieldRule], *, prefix: str = "", refuse_out_of_range: bool
) -> tuple[dict[str, Any], list[Problem], list[Problem]]:
    """A row given as named features (object) or in signature order (list) -> (row, errors, flags)."""
    errors: list[Problem] = []
    flags: list[Problem] = []
    if isinstance(raw, list):
        if len(raw) != len(rules):
            names = ", ".join(r.name for r in rules)
            reason = f"expected {len(rules)} values in this order: {names}; got {len(raw)}"
            return {}, [Problem(prefix.rstrip(".") or "features", reason)], []
        named = dict(zip((r.name for r in rules), raw, strict=True))
    elif isinstance(raw, dict):
        named = raw
        known = {r.name for r in rules}
        errors.extend(Problem(f"{prefix}{name}", "unknown field") for name in named if name not in known)
    else:
        return (
            {},
            [Problem(prefix.rstrip(".") or "body", "expected an object of named features or a list of values")],
            [],
        )
    row: dict[str, Any] = {}
    for rule in rules:
        where = f"{prefix}{rule.name}"
        if rule.required and rule.name not in named:
            errors.append(Problem(where, "missing required field"))
            continue
        value, error, flag = _check(rule, named.get(rule.name), where)
        if error:
            errors.append(error)
        elif flag:
            (errors if refuse_out_of_range else flags).append(flag)
        row[rule.name] = value
    return row, errors, flags


# Checked rows as one array per field, the form the models score and the batch routes validate: numbers float64
# (NaN for a missing value), text and booleans object arrays (None for a missing value).
Columns = dict[str, np.ndarray]


def row_count(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def chunks_of(columns: Columns, parts: int) -> list[Columns]:
    """The rows in ``parts`` consecutive chunks of nearly equal size (views, not copies), in order."""
    bounds = np.linspace(0, row_count(columns), parts + 1).astype(int)
    return [{name: column[start:end] for name, column in columns.items()} for start, end in pairwise(bounds)]


def column_array(values: list[Any], kind: Kind) -> np.ndarray:
    if kind in ("number", "integer"):
        return np.array(values, dtype=np.float64)  # None becomes NaN
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def columns_of(rows: list[dict[str, Any]], rules: list[FieldRule]) -> Columns:
    """Rows checked by ``check_row`` as columns; a field a row lacks is missing."""
    return {rule.name: column_array([row.get(rule.name) for row in rows], rule.kind) for rule in rules}


def frame_of_columns(columns: Columns, rules: list[FieldRule]) -> pd.DataFrame:
    """Columns as the model saw them in training: signature column order, NaN for a missing value of any kind
    (scikit-learn's imputers take NaN, not None, as missing)."""
    frame = pd.DataFrame({rule.name: columns[rule.name] for rule in rules}, columns=[r.name for r in rules])
    return frame.fillna(np.nan)


def frame_of(rows: list[dict[str, Any]], rules: list[FieldRule]) -> pd.DataFrame:
    """Checked rows as the model saw them in training (see ``frame_of_columns``)."""
    return frame_of_columns(columns_of(rows, rules), rules)
