"""Batch checks by column (services.columnar) against the row-by-row checks they stand in for; no server.

The HTTP side (each format answered, every malformed batch a 4xx) is in test_service_http.py, on its service.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.columnar import (
    ARROW_STREAM,
    PARQUET,
    BatchError,
    check_json_rows,
    check_table,
    read_table,
    write_table,
)
from services.inputs import FieldRule, check_row, columns_of

RULES = [
    FieldRule("age", "number", True, low=18, high=90),
    FieldRule("income", "number", False, low=0, high=1e6),
    FieldRule("accounts", "integer", True),
    FieldRule("region", "string", True, categories=frozenset({"north", "south"})),
    FieldRule("channel", "string", False),
]
ROWS = [
    {"age": 40, "income": 52000.5, "accounts": 3, "region": "north", "channel": "web"},
    {"age": 95.5, "income": None, "accounts": 0, "region": "atlantis", "channel": None},
    {"age": 18, "income": 2e7, "accounts": 12.0, "region": "south", "channel": "branch"},
]


def by_rows(rows, refuse):
    checked = [check_row(raw, RULES, prefix=f"rows[{i}].", refuse_out_of_range=refuse) for i, raw in enumerate(rows)]
    errors = [problem for _, row_errors, _ in checked for problem in row_errors]
    return [row for row, _, _ in checked], [flags for _, _, flags in checked], errors


@pytest.mark.parametrize("refuse", [False, True])
def test_json_columns_give_what_the_row_checks_give(refuse):
    rows, flags, errors = by_rows(ROWS, refuse)
    columns, column_flags, column_errors = check_json_rows(ROWS, RULES, refuse_out_of_range=refuse)
    assert [p.as_dict() for p in column_errors] == [p.as_dict() for p in errors]
    assert [[p.as_dict() for p in f] for f in column_flags] == [[p.as_dict() for p in f] for f in flags]
    if not refuse:
        expected = columns_of(rows, RULES)
        for name, values in expected.items():
            np.testing.assert_array_equal(columns[name], values)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"age": "40"}, "rows[1].age", "got a string"),
        ({"age": True}, "rows[1].age", "expected a number"),
        ({"accounts": 2.5}, "rows[1].accounts", "expected an integer"),
        ({"region": None}, "rows[1].region", "must not be null"),
        ({"shoe_size": 42}, "rows[1].shoe_size", "unknown field"),
        ({"age": 10**400}, "rows[1].age", "not a finite number"),
    ],
)
def test_a_json_value_the_columns_cannot_take_is_named_by_row_and_field(change, field, reason):
    rows = [ROWS[0], {**ROWS[0], **change}]
    _, _, errors = check_json_rows(rows, RULES, refuse_out_of_range=False)
    assert any(p.field == field and reason in p.reason for p in errors), errors


def arrow(table: pa.Table) -> bytes:
    return write_table(table, ARROW_STREAM)


def test_a_table_gives_the_columns_of_the_same_json_rows():
    for body, media_type in ((arrow(pa.Table.from_pylist(ROWS)), ARROW_STREAM), (None, PARQUET)):
        if body is None:
            sink = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(ROWS), sink)
            body = sink.getvalue()
        columns, flags, errors = check_table(
            read_table(body, media_type), RULES, max_rows=10, refuse_out_of_range=False
        )
        expected, expected_flags, _ = check_json_rows(ROWS, RULES, refuse_out_of_range=False)
        assert errors == [] and [len(f) for f in flags] == [len(f) for f in expected_flags] == [0, 2, 1]
        for name, values in expected.items():
            np.testing.assert_array_equal(columns[name], values)


def table_problems(table: pa.Table, max_rows: int = 10, refuse: bool = False) -> list[dict[str, str]]:
    try:
        _, _, errors = check_table(
            read_table(arrow(table), ARROW_STREAM), RULES, max_rows=max_rows, refuse_out_of_range=refuse
        )
    except BatchError as exc:
        return [p.as_dict() for p in exc.problems]
    return [p.as_dict() for p in errors]


GOOD = pa.Table.from_pylist(ROWS[:1])


@pytest.mark.parametrize(
    ("table", "field", "reason"),
    [
        (GOOD.append_column("shoe_size", pa.array([42])), "shoe_size", "unknown field"),
        (GOOD.drop_columns(["age"]), "age", "missing required field"),
        (GOOD.set_column(0, "age", pa.array(["40"])), "age", "expected numbers"),
        (GOOD.set_column(3, "region", pa.array([7])), "region", "expected text"),
        (GOOD.set_column(0, "age", pa.array([True])), "age", "type boolean"),
        (GOOD.set_column(0, "age", pa.array([None], pa.float64())), "age", "must not be null: 1 row (0)"),
        (GOOD.set_column(0, "age", pa.array([float("nan")])), "age", "not a finite number"),
        (GOOD.set_column(2, "accounts", pa.array([2.5])), "accounts", "expected an integer"),
        (GOOD.append_column("age", pa.array([41])), "age", "more than once"),
        (GOOD.slice(0, 0), "rows", "empty batch"),
        (pa.concat_tables([GOOD] * 11), "rows", "11 rows; at most 10"),
    ],
)
def test_every_malformed_table_names_its_column_and_reason(table, field, reason):
    problems = table_problems(table)
    assert any(p["field"] == field and reason in p["reason"] for p in problems), problems


def test_values_outside_the_profile_are_flags_or_errors_by_policy():
    table = pa.Table.from_pylist(ROWS)
    assert table_problems(table) == []
    refused = table_problems(table, refuse=True)
    assert {p["field"] for p in refused} == {"rows[1].age", "rows[1].region", "rows[2].income"}


@pytest.mark.parametrize("media_type", [ARROW_STREAM, PARQUET])
@pytest.mark.parametrize("body", [b"", b"not a table at all", arrow(GOOD)[:-40], b"PAR1" + b"\0" * 64])
def test_a_corrupt_body_is_a_400_naming_the_body(media_type, body):
    with pytest.raises(BatchError) as refused:
        read_table(body, media_type)
    assert refused.value.status == 400 and refused.value.problems[0].field == "body"
