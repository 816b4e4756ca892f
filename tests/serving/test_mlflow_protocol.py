"""MLflow scoring protocol codecs: every accepted body decodes to the same columns."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pandas as pd
import pytest

from flowship.errors import InvalidInput
from flowship.serving import mlflow_protocol as mp
from flowship.serving.errors import UnsupportedMediaType

FRAME = pd.DataFrame({"a": [1.5, 2.0], "b": [3, 4], "s": ["x", "y"]})
COLUMNS = {"a": [1.5, 2.0], "b": [3, 4], "s": ["x", "y"]}


def as_lists(columns: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in columns.items()}


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": FRAME.to_dict(orient="split")},
        {"dataframe_split": {"columns": ["a", "b", "s"], "data": [[1.5, 3, "x"], [2.0, 4, "y"]]}},
        {"dataframe_records": FRAME.to_dict(orient="records")},
        {"instances": FRAME.to_dict(orient="records")},
        {"inputs": COLUMNS},
        {"inputs": FRAME.to_dict(orient="records")},
        {"columns": ["a", "b", "s"], "data": [[1.5, 3, "x"], [2.0, 4, "y"]]},
    ],
    ids=["split-pandas", "split", "records", "instances", "inputs-dict", "inputs-records", "seed"],
)
def test_json_formats_decode_to_columns(body):
    decoded = mp.decode(orjson.dumps(body), mp.CONTENT_TYPE_JSON)
    assert decoded.n_rows == 2
    assert as_lists(decoded.columns) == COLUMNS


def test_csv_and_parquet_decode_to_columns():
    csv = mp.decode(FRAME.to_csv(index=False).encode(), mp.CONTENT_TYPE_CSV)
    buffer = io.BytesIO()
    FRAME.to_parquet(buffer)
    parquet = mp.decode(buffer.getvalue(), mp.CONTENT_TYPE_PARQUET)
    assert as_lists(csv.columns) == COLUMNS == as_lists(parquet.columns)


def test_params_are_kept_and_scalars_are_one_row():
    decoded = mp.decode_json(b'{"inputs": {"a": 1.0, "b": 2}, "params": {"k": 1}}')
    assert decoded.n_rows == 1 and decoded.params == {"k": 1}
    assert as_lists(decoded.columns) == {"a": [1.0], "b": [2]}


def test_missing_keys_in_records_become_null():
    decoded = mp.decode_json(b'{"dataframe_records": [{"a": 1}, {"b": 2}]}')
    assert decoded.columns == {"a": [1, None], "b": [None, 2]}


def test_encode_predictions_matches_mlflow_json():
    for values in (np.array([1, 0]), np.array([0.25, 0.5]), np.array(["yes", "no"])):
        assert orjson.loads(mp.encode_predictions(values)) == {"predictions": values.tolist()}
    proba = np.array([[0.1, 0.9], [0.7, 0.3]])
    assert orjson.loads(mp.encode_predictions(proba)) == {"predictions": proba.tolist()}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", mp.CONTENT_TYPE_JSON),
        ("application/json; charset=UTF-8", mp.CONTENT_TYPE_JSON),
        ("Text/CSV", mp.CONTENT_TYPE_CSV),
    ],
)
def test_media_type_accepts(content_type, expected):
    assert mp.media_type(content_type) == expected


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/json; charset=latin-1", "a/b; x=1"]
)
def test_media_type_refuses(content_type):
    with pytest.raises(UnsupportedMediaType):
        mp.media_type(content_type)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'"text"', "Received a JSON str"),
        (b'{"dataframe_split": {"data": [[1]]}}', "has no 'columns'"),
        (b'{"dataframe_split": {"columns": [1], "data": [[1]]}}', "list of column names"),
        (b'{"dataframe_split": {"columns": ["a"], "data": 5}}', "must be a list of rows"),
        (b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "x": 1}}', "'data' field"),
        (b'{"instances": [[1, 2]]}', "not a record"),
        (b'{"inputs": 5}', "must be a list of records"),
    ],
)
def test_bad_json_bodies(body, needle):
    with pytest.raises(InvalidInput, match=needle.replace("(", r"\(")):
        mp.decode_json(body)


def test_bad_csv():
    with pytest.raises(InvalidInput, match="Failed to parse input"):
        mp.decode(b"", mp.CONTENT_TYPE_CSV)
    with pytest.raises(InvalidInput, match="Failed to parse input as Parquet"):
        mp.decode(b"PAR1 but not really", mp.CONTENT_TYPE_PARQUET)
