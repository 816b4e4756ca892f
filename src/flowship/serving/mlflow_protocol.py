"""MLflow's scoring protocol (``mlflow models serve``): request bodies in, predictions out.

Accepted, as MLflow accepts them: JSON with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (plus optional ``params``), the bare
``{"columns": [...], "data": [[...]]}`` body older MLflow and the seed's examples use,
``text/csv`` and ``application/vnd.apache.parquet``. JSON goes straight to a mapping of
column name to values (no pandas) for the Predictor's fast path.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from flowship.errors import InvalidInput
from flowship.serving.errors import UnsupportedMediaType

CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
_EXAMPLE = '{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5]]}}'

Columns = dict[str, Any]  # column name -> list, tuple or 1-D numpy array, all of one length

_CHECKED_NAMES: set[tuple[str, ...]] = set()  # column lists already found valid
_CHECKED_NAMES_MAX = 1024


@dataclass(frozen=True, slots=True)
class Decoded:
    columns: Columns
    n_rows: int
    params: dict[str, Any] | None = None


def media_type(content_type: str | None) -> str:
    """Check a Content-Type header as MLflow's server does; return the bare media type."""
    if not content_type:
        raise UnsupportedMediaType(
            "The request has no Content-Type header.",
            f"Send one of {CONTENT_TYPES}, e.g. Content-Type: application/json.",
        )
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    values = {
        key.strip().lower(): value.strip()
        for key, _, value in (p.partition("=") for p in parameters if p)
    }
    if values.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedMediaType("The scoring server only supports UTF-8", "Send charset=utf-8.")
    if unexpected := sorted(set(values) - {"charset"}):
        raise UnsupportedMediaType(
            f"Unrecognized content type parameters: {', '.join(unexpected)}.",
            "The MLflow 1.x pandas format parameters are gone; wrap the data in "
            f"dataframe_split instead: {_EXAMPLE}",
        )
    mime = mime.lower()
    if mime not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"This predictor only supports the following content types: Types: {CONTENT_TYPES}."
            f" Got '{content_type}'.",
        )
    return mime


def decode(body: bytes, mime: str) -> Decoded:
    """Turn a request body of media type ``mime`` into columns."""
    if mime == CONTENT_TYPE_JSON:
        return decode_json(body)
    if mime == CONTENT_TYPE_CSV:
        return _decode_csv(body)
    return _decode_parquet(body)


def decode_json(body: bytes) -> Decoded:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"Invalid input. The request body is not valid JSON: {exc}.",
            "Send a JSON object such as "
            + _EXAMPLE
            + " (NaN and Infinity are not JSON: send null for a missing value).",
        ) from None
    if not isinstance(payload, dict):
        kind = "a list" if isinstance(payload, list) else f"a JSON {type(payload).__name__}"
        raise InvalidInput(
            f"Invalid input. The input must be a JSON dictionary with exactly one of the input "
            f"fields {list(FORMATS)}. Received {kind}.",
            f"Wrap the data, e.g. {_EXAMPLE}",
        )
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput(f"'params' must be a JSON object, got {_kind(params)}.")
    keys = [k for k in FORMATS if k in payload]
    if not keys and "data" in payload and set(payload) <= _SPLIT_KEYS | {"params"}:
        return _with_params(_split(payload, "the body"), params)  # the seed's bare split body
    if len(keys) != 1:
        raise InvalidInput(
            f"The input must be a JSON dictionary with exactly one of the input fields "
            f"{list(FORMATS)}. Received dictionary with input fields: {list(payload)[:20]}.",
            f"Wrap the data, e.g. {_EXAMPLE}",
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        decoded = _split(value, "dataframe_split")
    elif key == "dataframe_records":
        decoded = _records(value, "dataframe_records")
    elif key == "instances":
        decoded = _records(value, "instances")
    elif isinstance(value, dict):
        decoded = _column_dict(value)
    else:
        decoded = _records(value, "inputs")
    return _with_params(decoded, params)


def encode_predictions(predictions: np.ndarray) -> bytes:
    """``{"predictions": [...]}``: what MLflow returns for an ndarray result."""
    try:
        return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # object or unicode arrays (string labels): orjson wants lists
        return orjson.dumps({"predictions": np.asarray(predictions).tolist()})


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error_code": code, "message": message})


def _with_params(decoded: Decoded, params: dict[str, Any] | None) -> Decoded:
    return decoded if params is None else Decoded(decoded.columns, decoded.n_rows, params)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a JSON {type(value).__name__}"


def _split(value: object, where: str) -> Decoded:
    if not isinstance(value, dict):
        raise InvalidInput(
            f"Invalid input. Dataframe split format must be a dictionary. Got {_kind(value)}.",
            f"Send {_EXAMPLE}",
        )
    if "data" not in value or set(value) - _SPLIT_KEYS:
        raise InvalidInput(
            f"Invalid input. Dataframe split format must have 'data' field and optionally "
            f"'columns' and 'index' fields. Got {sorted(value)[:20]}.",
            f"Send {_EXAMPLE}",
        )
    columns, data = value.get("columns"), value["data"]
    if columns is None:
        raise InvalidInput(
            f"{where} has no 'columns': the model needs named inputs.",
            "List the column names in 'columns', in the order of each row's values.",
        )
    if not isinstance(columns, list):
        raise InvalidInput(f"'columns' in {where} must be a list of column names (strings).")
    names = tuple(columns)
    if names not in _CHECKED_NAMES:  # clients send the same header again and again
        if not all(isinstance(c, str) for c in names):
            raise InvalidInput(f"'columns' in {where} must be a list of column names (strings).")
        _check_unique(columns, where)
        if len(_CHECKED_NAMES) >= _CHECKED_NAMES_MAX:
            _CHECKED_NAMES.clear()
        _CHECKED_NAMES.add(names)
    if not isinstance(data, list):
        raise InvalidInput(f"'data' in {where} must be a list of rows, got {_kind(data)}.")
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise InvalidInput(
                f"Invalid input. Row {i} of {where} has {got} but there are {width} columns.",
                "Give every row one value per column, in the order of 'columns'.",
            )
    if not data:
        return Decoded({c: [] for c in columns}, 0)
    # Tuples, not lists: the Predictor takes any sequence, and this is the hot path.
    return Decoded(dict(zip(names, zip(*data, strict=True), strict=True)), len(data))


def _records(value: object, where: str) -> Decoded:
    if not isinstance(value, list):
        raise InvalidInput(
            f"Invalid input. {where} must be a list of records. Got {_kind(value)}.",
            'Send a list of {"column": value} objects, one per row.',
        )
    names: dict[str, None] = {}
    for i, record in enumerate(value):
        if not isinstance(record, dict):
            raise InvalidInput(
                f"Invalid input. Item {i} of {where} is {_kind(record)}, not a record: "
                "the model needs named inputs.",
                'Send a list of {"column": value} objects, one per row, '
                f"or use dataframe_split: {_EXAMPLE}",
            )
        names.update(dict.fromkeys(record))
    columns = {name: [record.get(name) for record in value] for name in names}
    return Decoded(columns, len(value))


def _column_dict(value: dict[str, Any]) -> Decoded:
    columns: Columns = {}
    n_rows: int | None = None
    for name, values in value.items():
        if not isinstance(values, list):
            values = [values]  # a scalar is one row
        if n_rows is None:
            n_rows = len(values)
        elif len(values) != n_rows:
            first = next(iter(columns))
            raise InvalidInput(
                f"Invalid input. Column {name!r} in inputs has {len(values)} values but "
                f"{first!r} has {n_rows}.",
                "Give every column the same number of values (one per row).",
            )
        columns[name] = values
    return Decoded(columns, n_rows or 0)


def _check_unique(columns: list[str], where: str) -> None:
    if len(set(columns)) != len(columns):
        seen: set[str] = set()
        dup = next(c for c in columns if c in seen or seen.add(c))
        raise InvalidInput(f"Column {dup!r} appears more than once in {where}.")


def _decode_csv(body: bytes) -> Decoded:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8")
    except Exception as exc:  # pandas raises many types for one cause: unparseable text
        raise InvalidInput(
            f"Failed to parse input as a Pandas DataFrame: {str(exc).splitlines()[0]}.",
            "Send CSV with a header row, as written by pandas.DataFrame.to_csv(index=False).",
        ) from None
    return _from_frame(frame)


def _decode_parquet(body: bytes) -> Decoded:
    import pyarrow.parquet as pq

    try:
        frame = pq.read_table(io.BytesIO(body)).to_pandas()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise InvalidInput(
            f"Failed to parse input as Parquet: {str(exc).splitlines()[0]}.",
            "Send a Parquet file as written by pandas.DataFrame.to_parquet().",
        ) from None
    return _from_frame(frame)


def _from_frame(frame: Any) -> Decoded:
    names = [str(c) for c in frame.columns]
    _check_unique(names, "the header")
    columns: Mapping[str, Any] = {
        n: frame[c].to_numpy() for n, c in zip(names, frame.columns, strict=True)
    }
    return Decoded(dict(columns), len(frame))
