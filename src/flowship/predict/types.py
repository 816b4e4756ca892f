"""MLflow column types: their names, the values each accepts, and how each is spelled by
NumPy, pandas, Arrow and the V2 protocol. The one owner of these rules: the signature
checks (``signature.py``), both serving protocols and batch rows call it, so that a
value is accepted or refused the same way on every path.

A ``long`` is a signed 64-bit integer and an ``integer`` a signed 32-bit one. Integers
are checked exactly: 2**63 - 1 is a long, 2**63 is not. A float is checked against the
floats nearest to the limits: float64 cannot tell 2**63 - 1 from 2**63, so the float
2.0**63 passes (batch hands the Predictor its checked longs as float64, and 2**63 - 1
becomes that float), and the next float above it does not. (A JSON integer outside
[-2**63, 2**64) reaches flowship as a float: orjson reads it so.) Whole floats are
accepted in integral columns, integers in floating ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUMERIC = frozenset({"double", "float", "long", "integer"})
INTEGRAL = frozenset({"long", "integer"})
RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
FRAME_DTYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
}
V2_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
}


def out_of_range(mlflow_type: str, values: np.ndarray) -> np.ndarray:
    """Mask of the values outside an integral type's range, compared exactly (integers
    as integers, never through float64); all False for other types."""
    if mlflow_type not in RANGES:
        return np.zeros(values.shape, dtype=bool)
    low, high = RANGES[mlflow_type]
    kind = values.dtype.kind
    if kind in "iu":
        info = np.iinfo(values.dtype)
        if info.min >= low and info.max <= high:
            return np.zeros(values.shape, dtype=bool)
        if kind == "u":
            return values > np.uint64(high)
        return (values < low) | (values > high)
    if kind == "f":  # against the floats nearest to the limits (see above)
        with np.errstate(invalid="ignore"):
            return (values < float(low)) | (values > float(high))
    if kind == "b":
        return np.zeros(values.shape, dtype=bool)
    return np.array([_int_outside(v, low, high) for v in values], dtype=bool)


def _int_outside(value: Any, low: int, high: int) -> bool:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return False
    if isinstance(value, (int, np.integer)):
        return not low <= int(value) <= high
    if isinstance(value, (float, np.floating)) and np.isfinite(value):
        return not float(low) <= float(value) <= float(high)
    return False


def range_text(mlflow_type: str) -> str:
    low, high = RANGES[mlflow_type]
    return f"from {low} to {high}"


def arrow_type(mlflow_type: str) -> Any:  # -> pyarrow.DataType | None
    """The Arrow type a column of ``mlflow_type`` is read as (None for types passed
    through to the model as they come)."""
    import pyarrow as pa

    return {
        "double": pa.float64(),
        "float": pa.float32(),
        "long": pa.int64(),
        "integer": pa.int32(),
        "boolean": pa.bool_(),
        "string": pa.string(),
    }.get(mlflow_type)


def accepts_arrow(mlflow_type: str, arrow: Any) -> bool:
    """Whether a column of Arrow type ``arrow`` can feed a signature column (its values
    are then checked one by one: an unsigned 64-bit column may hold longs and more)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    if mlflow_type in ("double", "float"):
        return pa.types.is_integer(arrow) or pa.types.is_floating(arrow)
    if mlflow_type in INTEGRAL:
        return pa.types.is_integer(arrow)
    if mlflow_type == "boolean":
        return pa.types.is_boolean(arrow)
    if mlflow_type == "string":
        return pa.types.is_string(arrow) or pa.types.is_large_string(arrow)
    return True  # other types are passed through for the model to judge
