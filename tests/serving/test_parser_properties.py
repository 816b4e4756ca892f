"""Property-based tests (hypothesis) of the body parsers: whatever the bytes, a parser
returns columns or raises InvalidInput (a 400/413), and never builds more than the
limits allow."""

from __future__ import annotations

import io

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowship.errors import InvalidInput
from flowship.serving import mlflow_protocol as mlflow
from flowship.serving import v2_protocol as v2
from flowship.serving.limits import RequestLimits

PROPERTIES = settings(
    max_examples=200, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
LIMITS = RequestLimits(max_columns=8, max_cells=500)

scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=40,
)
keys = st.sampled_from(
    ["dataframe_split", "dataframe_records", "instances", "inputs", "columns", "data", "params"]
)
bodies = st.dictionaries(keys, json_values, max_size=3) | json_values


def _decode_or_invalid(body: bytes, mime: str = mlflow.CONTENT_TYPE_JSON):
    try:
        decoded = mlflow.decode(body, mime, LIMITS)
    except InvalidInput:
        return None
    assert len(decoded.columns) <= LIMITS.max_columns
    assert decoded.n_rows * len(decoded.columns) <= LIMITS.max_cells
    for values in decoded.columns.values():
        assert len(values) == decoded.n_rows
    return decoded


@PROPERTIES
@given(bodies)
def test_any_json_body_gives_columns_within_limits_or_invalid_input(value):
    try:
        body = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, NaN: not JSON
        return
    _decode_or_invalid(body)


@PROPERTIES
@given(st.binary(max_size=300))
def test_any_bytes_as_json_csv_or_parquet(raw):
    for mime in mlflow.CONTENT_TYPES:
        _decode_or_invalid(raw, mime)


names = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6, unique=True)


@PROPERTIES
@given(names, st.data())
def test_split_round_trips(columns, data):
    rows = data.draw(
        st.lists(
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False),
                min_size=len(columns),
                max_size=len(columns),
            ),
            max_size=20,
        )
    )
    body = orjson.dumps({"dataframe_split": {"columns": columns, "data": rows}})
    decoded = _decode_or_invalid(body)
    assert decoded is not None
    assert decoded.n_rows == len(rows)
    for i, name in enumerate(columns):
        assert list(decoded.columns[name]) == [row[i] for row in rows]


@PROPERTIES
@given(st.lists(st.dictionaries(st.text(max_size=3), scalars, max_size=12), max_size=60))
def test_records_never_build_more_than_the_limits(records):
    try:
        body = orjson.dumps({"dataframe_records": records})
    except (TypeError, orjson.JSONEncodeError):
        return
    _decode_or_invalid(body)


datatypes = st.sampled_from(sorted(v2.NUMPY_DTYPES))
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c"]),
        "shape": st.lists(st.integers(-2, 2**40), max_size=3),
        "datatype": datatypes,
        "data": json_values,
    }
)


@PROPERTIES
@given(st.lists(tensors, min_size=1, max_size=3), st.binary(max_size=40))
def test_any_v2_request_gives_columns_or_invalid_input(inputs, tail):
    try:
        body = orjson.dumps({"inputs": inputs})
    except (TypeError, orjson.JSONEncodeError):
        return
    try:
        parsed, _ = v2.parse_request(body, None)
        columns, rows = v2.request_columns(
            parsed,
            tail,
            ["a", "b", "c"],
            input_types={"a": "double", "b": "long", "c": "string"},
            limits=LIMITS,
        )
    except InvalidInput:
        return
    assert all(len(column) == rows for column in columns.values())
    assert rows * len(columns) <= LIMITS.max_cells


@pytest.mark.parametrize("rows", [1, 7])
def test_a_parquet_file_within_limits_round_trips(rows):
    import pandas as pd

    frame = pd.DataFrame({"x": [float(i) for i in range(rows)], "y": list(range(rows))})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    decoded = _decode_or_invalid(buffer.getvalue(), mlflow.CONTENT_TYPE_PARQUET)
    assert decoded is not None and list(decoded.columns["y"]) == list(range(rows))
