"""Batches as columns: JSON rows, Apache Arrow IPC streams and Parquet files checked one column at a time.

``/predict_batch`` scores thousands of rows per call. Checking them one value at a time in Python costs more than
scoring them, so each format is turned into ``services.inputs.Columns`` and checked with array operations: a
column of the wrong type is one problem naming the column; nulls, non-finite numbers, fractions in an integer
column and values outside the training profile are found with one comparison per column. JSON rows whose
values the fast path cannot vouch for (a wrong type, a missing or unknown field, a NaN token) go through
``check_row`` row by row, so every JSON client error reads as it does for /predict.
"""

from __future__ import annotations

import io
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet

from services.inputs import Columns, FieldRule, Problem, check_row, column_array

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
JSON = "application/json"
BATCH_MEDIA_TYPES = (JSON, ARROW_STREAM, PARQUET)
SHOWN_ROWS = 5  # row numbers named in a column's problem
NO_FLAGS: list[Problem] = []  # shared by every row without a note (never appended to): no list per row


class BatchError(Exception):
    """A batch refused as a whole: the HTTP status, the error name and the problems by column."""

    def __init__(self, status: int, error: str, problems: list[Problem]) -> None:
        self.status, self.error, self.problems = status, error, problems


def _rows_named(indexes: np.ndarray) -> str:
    shown = ", ".join(str(i) for i in indexes[:SHOWN_ROWS])
    more = f" and {len(indexes) - SHOWN_ROWS} more" if len(indexes) > SHOWN_ROWS else ""
    return f"{len(indexes)} row{'s' if len(indexes) > 1 else ''} ({shown}{more})"


def _range_note(number: float, rule: FieldRule) -> str:
    """The words ``check_row`` uses for a value outside the training range."""
    return f"{number:.6g} is far outside the training range (allowed {rule.low:.6g} to {rule.high:.6g})"


def _category_note(value: str) -> str:
    return f"{value!r} is a category never seen in training"


def profile_notes(
    columns: Columns, rules: list[FieldRule], *, refuse_out_of_range: bool, prefix: str = "rows"
) -> tuple[list[list[Problem]], list[Problem]]:
    """Values outside the training profile: a note per row (the flags) or, under the refuse policy, the errors."""
    count = len(next(iter(columns.values()))) if columns else 0
    notes: dict[int, list[Problem]] = {}
    for rule in rules:
        values = columns[rule.name]
        if rule.low is not None and rule.high is not None and rule.kind in ("number", "integer"):
            with np.errstate(invalid="ignore"):
                outside = np.flatnonzero((values < rule.low) | (values > rule.high))
            for i in outside.tolist():
                notes.setdefault(i, []).append(Problem(f"{prefix}[{i}].{rule.name}", _range_note(values[i], rule)))
        elif rule.categories is not None and rule.kind == "string":
            unseen = np.flatnonzero((pd.Index(list(rule.categories)).get_indexer(values) < 0) & ~pd.isna(values))
            for i in unseen.tolist():
                notes.setdefault(i, []).append(Problem(f"{prefix}[{i}].{rule.name}", _category_note(values[i])))
    if refuse_out_of_range:
        return [NO_FLAGS] * count, [p for i in sorted(notes) for p in notes[i]]
    if not notes:
        return [NO_FLAGS] * count, []
    return [notes.get(i, NO_FLAGS) for i in range(count)], []


# ---- JSON rows -------------------------------------------------------------------------------------------------

_NUMBER_TYPES = frozenset({int, float})


def _json_column(values: Sequence[Any], rule: FieldRule) -> np.ndarray | None:
    """The column when every value is of the field's kind (or null where allowed), else None."""
    types = set(map(type, values))
    missing = type(None) in types
    if missing and rule.required:
        return None
    types.discard(type(None))
    if rule.kind in ("number", "integer"):
        if not types <= _NUMBER_TYPES:  # bool is not an int here: type() is exact
            return None
        with np.errstate(over="ignore"):
            try:
                column = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer beyond float range
                return None
        # NaN here can only be a null (a NaN token parses to a NonFinite marker); 1e400 parses to infinity.
        finite = np.isfinite(column) | np.isnan(column) if missing else np.isfinite(column)
        if not finite.all():
            return None
        if rule.kind == "integer" and not np.all(np.isnan(column) | (column == np.floor(column))):
            return None
        return column
    expected = str if rule.kind == "string" else bool
    return column_array(values, rule.kind) if types <= {expected} else None


def _transposed(raw_rows: list[Any], names: list[str]) -> list[tuple[Any, ...]] | None:
    """The rows' values column by column when every row is an object of exactly the ``names``, else None."""
    if set(map(type, raw_rows)) != {dict} or set(map(len, raw_rows)) != {len(names)}:
        return None
    getter = operator.itemgetter(*names)
    try:
        return list(zip(*map(getter, raw_rows), strict=True)) if len(names) > 1 else [tuple(map(getter, raw_rows))]
    except KeyError:  # as many fields, but not the same ones
        return None


def check_json_rows(
    raw_rows: list[Any], rules: list[FieldRule], *, refuse_out_of_range: bool
) -> tuple[Columns, list[list[Problem]], list[Problem]]:
    """JSON rows (objects of named features, or lists in signature order) -> (columns, flags, errors)."""
    columns: Columns | None = None
    by_column = _transposed(raw_rows, [rule.name for rule in rules])
    if by_column is not None:
        columns = {}
        for rule, values in zip(rules, by_column, strict=True):
            column = _json_column(values, rule)
            if column is None:
                columns = None
                break
            columns[rule.name] = column
    if columns is None:  # the row-by-row checks name each problem as /predict does
        checked = [
            check_row(raw, rules, prefix=f"rows[{i}].", refuse_out_of_range=refuse_out_of_range)
            for i, raw in enumerate(raw_rows)
        ]
        errors = [problem for _, row_errors, _ in checked for problem in row_errors]
        if errors:
            return {}, [], errors
        rows = [row for row, _, _ in checked]
        columns = {rule.name: column_array([row[rule.name] for row in rows], rule.kind) for rule in rules}
        return columns, [row_flags for _, _, row_flags in checked], []
    flags, errors = profile_notes(columns, rules, refuse_out_of_range=refuse_out_of_range)
    return columns, flags, errors


# ---- Arrow and Parquet -----------------------------------------------------------------------------------------


def read_table(body: bytes, media_type: str) -> pa.Table:
    """The body as an Arrow table; a body the format's reader refuses is a 400 naming the reader's reason."""
    try:
        if media_type == PARQUET:
            return pyarrow.parquet.read_table(io.BytesIO(body))
        with pyarrow.ipc.open_stream(body) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        name = "Parquet file" if media_type == PARQUET else "Arrow IPC stream"
        reason = f"not a readable {name}: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
        raise BatchError(400, "malformed_body", [Problem("body", reason)]) from exc


def _kind_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        return _kind_of(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_null(arrow_type):
        return "null"
    return str(arrow_type)


_ACCEPTS = {
    "number": {"number", "integer", "null"},
    "integer": {"integer", "number", "null"},
    "string": {"string", "null"},
    "boolean": {"boolean", "null"},
}
_EXPECTED = {
    "number": "numbers (an integer or floating-point column)",
    "integer": "integers (an integer column, or floating-point with whole values)",
    "string": "text (a string column)",
    "boolean": "true or false (a boolean column)",
}


def _arrow_column(chunked: pa.ChunkedArray, rule: FieldRule) -> tuple[np.ndarray | None, list[Problem]]:
    """One column checked: (the column, []) or (None, its problems)."""
    kind = _kind_of(chunked.type)
    if kind not in _ACCEPTS[rule.kind]:
        return None, [Problem(rule.name, f"expected {_EXPECTED[rule.kind]}, got an Arrow column of type {kind}")]
    nulls = np.flatnonzero(chunked.is_null().to_numpy(zero_copy_only=False))
    if rule.required and len(nulls):
        return None, [Problem(rule.name, f"must not be null: {_rows_named(nulls)}")]
    if kind == "null":
        return column_array([None] * len(chunked), rule.kind), []
    if rule.kind == "string" and not pa.types.is_dictionary(chunked.type):
        return chunked.to_numpy(zero_copy_only=False), []  # an object array, None for a null: Columns' own form
    if rule.kind == "string":  # a dictionary column's to_numpy does not keep its nulls
        return column_array(chunked.to_pylist(), rule.kind), []
    if rule.kind == "boolean":
        return column_array(chunked.to_pylist(), rule.kind), []
    column = chunked.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    problems = []
    non_finite = np.flatnonzero(~np.isfinite(column))
    non_finite = np.setdiff1d(non_finite, nulls, assume_unique=True)
    if len(non_finite):
        problems.append(
            Problem(rule.name, f"not a finite number (send null for a missing value): {_rows_named(non_finite)}")
        )
    if rule.kind == "integer":
        with np.errstate(invalid="ignore"):
            fractions = np.flatnonzero(np.isfinite(column) & (column != np.floor(column)))
        if len(fractions):
            problems.append(Problem(rule.name, f"expected an integer: {_rows_named(fractions)}"))
    return (None if problems else column), problems


def check_row_count(rows: int, max_rows: int) -> None:
    """A batch with no row, or with more than ``max_rows``, is refused as a whole, whatever its format."""
    if rows == 0:
        raise BatchError(422, "invalid_input", [Problem("rows", "empty batch")])
    if rows > max_rows:
        raise BatchError(422, "batch_too_large", [Problem("rows", f"{rows} rows; at most {max_rows} per request")])


def check_table(
    table: pa.Table, rules: list[FieldRule], *, max_rows: int, refuse_out_of_range: bool
) -> tuple[Columns, list[list[Problem]], list[Problem]]:
    """An Arrow table -> (columns, flags, errors); an empty or oversized table is refused as a whole."""
    check_row_count(table.num_rows, max_rows)
    known = {rule.name for rule in rules}
    names = table.column_names
    errors = [Problem(name, "unknown field") for name in names if name not in known]
    errors += [
        Problem(name, "the column appears more than once") for name in sorted(set(names)) if names.count(name) > 1
    ]
    columns: Columns = {}
    for rule in rules:
        if rule.name not in names:
            if rule.required:
                errors.append(Problem(rule.name, "missing required field"))
            else:
                columns[rule.name] = column_array([None] * table.num_rows, rule.kind)
            continue
        if names.count(rule.name) > 1:
            continue
        column, problems = _arrow_column(table.column(rule.name), rule)
        errors += problems
        if column is not None:
            columns[rule.name] = column
    if errors:
        return {}, [], errors
    flags, errors = profile_notes(columns, rules, refuse_out_of_range=refuse_out_of_range)
    return columns, flags, errors


def write_table(table: pa.Table, media_type: str) -> bytes:
    sink = io.BytesIO()
    if media_type == PARQUET:
        pyarrow.parquet.write_table(table, sink)
    else:
        with pyarrow.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()
