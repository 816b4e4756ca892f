"""Input checks, on the compiled schema alone (no model needed): every message exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flowship.errors import InvalidInput, SchemaMismatch
from flowship.predict.signature import InputColumn, InputSchema

COLUMNS = [
    InputColumn("age", "double"),
    InputColumn("tenure", "double"),
    InputColumn("n_products", "long"),
    InputColumn("score", "float", required=False),
]
GOOD = {"age": [35.0, 42.0], "tenure": [24, 36], "n_products": [1, 3], "score": [0.5, 0.1]}


def schema(**kw) -> InputSchema:
    return InputSchema(COLUMNS, **kw)


def message(data, **kw) -> str:
    with pytest.raises(InvalidInput) as info:
        schema(**kw).to_matrix(data)
    return info.value.message


def as_forms(data: dict):
    """The same input as a mapping of lists, NumPy arrays, a DataFrame and Arrow."""
    yield data
    yield {k: np.asarray(v) for k, v in data.items()}
    yield pd.DataFrame(data)
    yield pa.table(data)
    yield pa.RecordBatch.from_pydict(data)


@pytest.mark.parametrize("form", range(5))
def test_every_input_form_gives_the_same_matrix(form):
    data = list(as_forms(GOOD))[form]
    matrix = schema().to_matrix(data)
    expected = np.array([[35.0, 24.0, 1.0, 0.5], [42.0, 36.0, 3.0, 0.1]])
    assert matrix.dtype == np.float64 and matrix.flags.c_contiguous
    np.testing.assert_allclose(matrix, expected, rtol=1e-7)


def test_matrix_follows_the_given_column_order():
    matrix = InputSchema(COLUMNS, order=["n_products", "score", "age", "tenure"]).to_matrix(GOOD)
    assert matrix[0].tolist() == [1.0, 0.5, 35.0, 24.0]


def test_single_row_of_scalars():
    row = {"age": 35, "tenure": 24.5, "n_products": 2, "score": 0.25}
    assert schema().to_matrix(row).tolist() == [[35.0, 24.5, 2.0, 0.25]]


def test_float32_matrix():
    assert schema().to_matrix(GOOD, np.float32).dtype == np.float32


def test_missing_required_columns():
    assert message({"n_products": [1]}) == "Missing required column(s) 'age', 'tenure'."


@pytest.mark.parametrize("form", range(5))
def test_missing_optional_column_becomes_nan(form):
    data = {k: v for k, v in GOOD.items() if k != "score"}
    matrix = schema().to_matrix(list(as_forms(data))[form])
    assert np.isnan(matrix[:, 3]).all()


def test_string_in_a_double_column_names_value_and_row():
    data = dict(GOOD, age=[35.0, 1.0, 3.0, "abc"], tenure=[1, 2, 3, 4], n_products=[1] * 4)
    data["score"] = [0.0] * 4
    assert message(data) == "Column 'age' expects double, got string value 'abc' in row 3."


@pytest.mark.parametrize("form", [2, 3])
def test_string_column_for_a_double_column(form):
    data = list(as_forms(dict(GOOD, age=["35", "x"])))[form]
    assert message(data) == "Column 'age' expects double, got string value '35' in row 0."


def test_numeric_string_is_not_silently_converted():
    assert (
        message(dict(GOOD, tenure=["24", "36"]))
        == "Column 'tenure' expects double, got string value '24' in row 0."
    )


def test_non_integer_in_a_long_column():
    assert (
        message(dict(GOOD, n_products=[1, 2.5]))
        == "Column 'n_products' expects long, got non-integer value 2.5 in row 1."
    )


def test_integral_floats_and_ints_are_accepted():
    data = dict(GOOD, n_products=[1.0, 3.0], age=[35, 42])
    assert schema().to_matrix(data)[:, :3].tolist() == [[35, 24, 1], [42, 36, 3]]


@pytest.mark.parametrize("form", range(5))
def test_nan_in_a_required_column(form):
    data = list(as_forms(dict(GOOD, tenure=[24.0, math.nan])))[form]
    expected = "Column 'tenure' is required but has a missing value (NaN) in row 1."
    assert message(data) == expected


@pytest.mark.parametrize("form", [0, 3])
def test_null_in_a_required_column(form):
    data = list(as_forms(dict(GOOD, age=[None, 42.0])))[form]
    assert message(data) in (
        "Column 'age' is required but has a missing value (null) in row 0.",
        "Column 'age' is required but has a missing value (NaN) in row 0.",
    )


def test_nan_is_allowed_in_an_optional_column():
    matrix = schema().to_matrix(dict(GOOD, score=[math.nan, 0.1]))
    assert math.isnan(matrix[0, 3])


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinity_is_refused(value):
    text = message(dict(GOOD, score=[0.1, value]))
    assert text == f"Column 'score' has an infinite value ({value!r}) in row 1."


def test_extra_columns_are_ignored_by_default():
    data = dict(GOOD, comment=["x", "y"], **{str(i): [i, i] for i in range(3000)})
    assert schema().to_matrix(data).shape == (2, 4)


def test_extra_columns_rejected_when_asked():
    text = message(dict(GOOD, comment=["x", "y"], city=["a", "b"]), extra="reject")
    assert (
        text == "Unexpected column(s) 'comment', 'city': the model's signature does not name them."
    )


def test_many_missing_columns_are_summarised():
    cols = [InputColumn(f"f{i}", "double") for i in range(50)]
    with pytest.raises(SchemaMismatch) as info:
        InputSchema(cols).to_matrix({"other": [1.0]})
    assert info.value.message.endswith("'f19' and 30 more.")


@pytest.mark.parametrize("form", range(5))
def test_empty_input(form):
    data = list(as_forms({k: [] for k in GOOD}))[form] if form < 2 else None
    if data is None:
        data = pd.DataFrame({k: pd.Series([], dtype="float64") for k in GOOD})
        data = [None, None, data, pa.Table.from_pandas(data), pa.RecordBatch.from_pandas(data)][
            form
        ]
    assert message(data) == "Input has no rows."


def test_columns_of_different_lengths():
    text = message(dict(GOOD, age=[1.0, 2.0, 3.0]))
    assert text == "Columns have different lengths: 'age' has 3 rows, 'tenure' has 2."


def test_nested_values():
    text = message(dict(GOOD, age=[[1.0, 2.0], [3.0, 4.0]]))
    assert text == "Column 'age' must be a flat list of values, got nested values of shape (2, 2)."
    text = message(dict(GOOD, age=np.ones((2, 2))))
    assert text == "Column 'age' must be a flat list of values, got an array of shape (2, 2)."


def test_hostile_values():
    assert (
        message(dict(GOOD, age=[{"$gt": 1}, 2.0]))
        == "Column 'age' expects double, got dict value {'$gt': 1} in row 0."
    )
    long_text = "x" * 10_000
    text = message(dict(GOOD, age=[long_text, 2.0]))
    assert len(text) < 120 and text.startswith("Column 'age' expects double, got string value")


def test_unsupported_input_type():
    with pytest.raises(InvalidInput) as info:
        schema().to_matrix([[1, 2, 3, 4]])
    assert info.value.message == "Unsupported input of type list."


def test_duplicate_dataframe_columns():
    frame = pd.DataFrame(
        [[1.0, 2.0, 3, 0.1, 5.0]], columns=["age", "tenure", "n_products", "score", "age"]
    )
    with pytest.raises(SchemaMismatch) as info:
        schema().to_matrix(frame)
    assert info.value.message == "Duplicate column(s) 'age'."


def test_arrow_type_that_cannot_be_a_number():
    table = pa.table(dict(GOOD, age=pa.array([[1.0], [2.0]])))
    assert message(table) == "Column 'age' expects double, got Arrow type list<item: double>."


def test_string_and_boolean_columns():
    cols = [InputColumn("plan", "string"), InputColumn("active", "boolean")]
    s = InputSchema(cols)
    n, checked = s.check({"plan": ["basic", "pro"], "active": [True, False]})
    assert n == 2 and checked["plan"].tolist() == ["basic", "pro"]
    with pytest.raises(SchemaMismatch) as info:
        s.check({"plan": ["basic", 5], "active": [True, False]})
    assert info.value.message == "Column 'plan' expects string, got number 5 in row 1."
    with pytest.raises(SchemaMismatch) as info:
        s.check({"plan": ["basic", "pro"], "active": [True, "yes"]})
    assert info.value.message == "Column 'active' expects boolean, got string value 'yes' in row 1."
    frame = s.to_frame({"plan": ["basic", "pro"], "active": [True, False]})
    assert frame.dtypes["active"] == np.dtype(bool)


def test_large_arrow_batch_is_vectorised():
    n = 100_000
    rng = np.random.default_rng(0)
    batch = pa.RecordBatch.from_pydict(
        {
            "age": rng.normal(size=n),
            "tenure": rng.normal(size=n),
            "n_products": rng.integers(0, 5, n),
            "score": rng.normal(size=n).astype(np.float32),
        }
    )
    matrix = schema().to_matrix(batch)
    assert matrix.shape == (n, 4)
    np.testing.assert_array_equal(matrix[:, 2], batch.column("n_products").to_numpy())


def _deep(levels: int) -> list:
    value: list = [1.0]
    for _ in range(levels):
        value = [value]
    return value


HOSTILE = [
    _deep(200),
    {"x": 1},
    [{"x": 1}],
    None,
    [None],
    [[1], [2, 3]],
    "abc",
    ["a", 1],
    [1e400],
    [2**70],
    [b"x"],
    [1 + 2j],
    [np.datetime64("2020-01-01")],
    np.zeros((1, 1, 1)),
    [object()],
    {1},
    ["1e5"],
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_give_a_flowship_error_or_a_result(value):
    cols = [
        InputColumn("a", "double"),
        InputColumn("b", "integer"),
        InputColumn("c", "string", required=False),
    ]
    for data in (
        {"a": value, "b": [1]},
        {"a": [1.0], "b": value},
        {"a": [1.0], "b": [1], "c": value},
    ):
        for convert in (InputSchema(cols).to_frame, InputSchema(cols[:2]).to_matrix):
            try:
                convert(data)
            except InvalidInput as error:
                assert len(error.message) < 300 and "\n" not in error.message


def test_out_of_range_integers():
    with pytest.raises(SchemaMismatch) as info:
        InputSchema([InputColumn("b", "integer")]).to_matrix({"b": [1, 2**40]})
    assert (
        info.value.message
        == "Column 'b' expects integer, got out-of-range value 1099511627776 in row 1."
    )
    with pytest.raises(SchemaMismatch) as info:
        InputSchema([InputColumn("b", "long")]).to_matrix({"b": [2**70]})
    assert info.value.message.startswith("Column 'b' expects long, got ")
