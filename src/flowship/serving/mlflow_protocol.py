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
from flowship.serving.limits import UNLIMITED, RequestLimits

CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
_EXAMPLE = '{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5]]}}'

Columns = dict[str, Any]  # column name -> list, tuple or 1-D numpy array, all of one length

# Column lists already found valid. Only short lists are kept, so the cache stays small
# whatever clients send (it once kept 1,024 lists of any length).
_CHECKED_NAMES: set[tuple[str, ...]] = set()
_CHECKED_NAMES_MAX = 256
_CHECKED_NAMES_WIDTH = 512


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


def decode(body: bytes, mime: str, limits: RequestLimits = UNLIMITED) -> Decoded:
    """Turn a request body of media type ``mime`` into columns, refusing a body whose
    declared shape is over ``limits`` before building anything from it."""
    if mime == CONTENT_TYPE_JSON:
        return decode_json(body, limits)
    if mime == CONTENT_TYPE_CSV:
        return _decode_csv(body, limits)
    return _decode_parquet(body, limits)


def decode_json(body: bytes, limits: RequestLimits = UNLIMITED) -> Decoded:
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
        return _with_params(_split(payload, "the body", limits), params)  # the seed's body
    if len(keys) != 1:
        raise InvalidInput(
            f"The input must be a JSON dictionary with exactly one of the input fields "
            f"{list(FORMATS)}. Received dictionary with input fields: {list(payload)[:20]}.",
            f"Wrap the data, e.g. {_EXAMPLE}",
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        decoded = _split(value, "dataframe_split", limits)
    elif key in ("dataframe_records", "instances"):
        decoded = _records(value, key, limits)
    elif isinstance(value, dict):
        decoded = _column_dict(value, limits)
    else:
        decoded = _records(value, "inputs", limits)
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


def _split(value: object, where: str, limits: RequestLimits) -> Decoded:
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
    limits.check_columns(len(columns), where)
    names = tuple(columns)
    try:
        known = names in _CHECKED_NAMES  # clients send the same header again and again
    except TypeError:  # an unhashable "name" (a list, an object) is refused just below
        known = False
    if not known:
        if not all(isinstance(c, str) for c in names):
            raise InvalidInput(f"'columns' in {where} must be a list of column names (strings).")
        _check_unique(columns, where)
        if len(names) <= _CHECKED_NAMES_WIDTH:
            if len(_CHECKED_NAMES) >= _CHECKED_NAMES_MAX:
                _CHECKED_NAMES.clear()
            _CHECKED_NAMES.add(names)
    if not isinstance(data, list):
        raise InvalidInput(f"'data' in {where} must be a list of rows, got {_kind(data)}.")
    width = len(columns)
    limits.check_cells(len(data), width, where)
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


def _records(value: object, where: str, limits: RequestLimits) -> Decoded:
    if not isinstance(value, list):
        raise InvalidInput(
            f"Invalid input. {where} must be a list of records. Got {_kind(value)}.",
            'Send a list of {"column": value} objects, one per row.',
        )
    names: dict[str, None] = {}
    most = limits.max_columns
    for i, record in enumerate(value):
        if not isinstance(record, dict):
            raise InvalidInput(
                f"Invalid input. Item {i} of {where} is {_kind(record)}, not a record: "
                "the model needs named inputs.",
                'Send a list of {"column": value} objects, one per row, '
                f"or use dataframe_split: {_EXAMPLE}",
            )
        names.update(dict.fromkeys(record))
        if len(names) > most:  # before the next record: each may name new columns
            limits.check_columns(len(names), where)
    # Missing keys become None, so the columns built are rows x names, not the body's size.
    limits.check_cells(len(value), len(names), where)
    columns = {name: [record.get(name) for record in value] for name in names}
    return Decoded(columns, len(value))


def _column_dict(value: dict[str, Any], limits: RequestLimits) -> Decoded:
    limits.check_columns(len(value), "inputs")
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
    limits.check_cells(n_rows or 0, len(columns), "inputs")
    return Decoded(columns, n_rows or 0)


def _check_unique(columns: list[str], where: str) -> None:
    if len(set(columns)) != len(columns):
        seen: set[str] = set()
        dup = next(c for c in columns if c in seen or seen.add(c))
        raise InvalidInput(f"Column {dup!r} appears more than once in {where}.")


def _decode_csv(body: bytes, limits: RequestLimits) -> Decoded:
    import pandas as pd

    header = body[: body.find(b"\n")] if b"\n" in body else body
    # A CSV cell costs at least its separator, so only the header's width needs a check.
    limits.check_columns(header.count(b",") + 1, "The CSV header")
    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8")
    except Exception as exc:  # pandas raises many types for one cause: unparseable text
        raise InvalidInput(
            f"Failed to parse input as a Pandas DataFrame: {str(exc).splitlines()[0]}.",
            "Send CSV with a header row, as written by pandas.DataFrame.to_csv(index=False).",
        ) from None
    return _from_frame(frame)


def _decode_parquet(body: bytes, limits: RequestLimits) -> Decoded:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(io.BytesIO(body))
        meta = file.metadata
        # The footer declares the shape: check it before a single page is decoded.
        limits.check_columns(meta.num_columns, "The Parquet file")
        limits.check_cells(meta.num_rows, meta.num_columns, "The Parquet file")
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        limits.check_bytes(declared, "The Parquet file")
        frame = file.read().to_pandas()
    except InvalidInput:
        raise
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
