"""Input checks against a model's signature, compiled once at load.

:class:`InputSchema` turns whatever the caller has (a mapping of column → values, a
pyarrow Table or RecordBatch, a pandas DataFrame) into the matrix or frame a backend
wants, raising ``SchemaMismatch`` with a message that names the column, the expected
type, the value received and its row (rows are numbered from 0, as in a DataFrame or a
JSON array). The mapping path never touches pandas, and the common case (every column
numeric, no anomalies) is a handful of vectorised NumPy calls.

Decisions, documented in docs/predict.md:
- extra columns are ignored by default, as MLflow does; ``extra="reject"`` refuses them;
- integers are accepted for double/float columns, integral floats for long/integer
  columns, and booleans count as 0/1 in numeric columns;
- NaN (or null/None) is refused in required columns and allowed in optional ones, where
  a missing optional column is filled with NaN, unless the model cannot handle NaN
  (``missing_ok=False``, probed at load): then its optional columns become required;
  infinity is always refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from flowship.errors import InvalidInput, SchemaMismatch
from flowship.predict import types
from flowship.predict.types import FRAME_DTYPES as _FRAME_DTYPES
from flowship.predict.types import INTEGRAL as _INTEGRAL
from flowship.predict.types import NUMERIC as NUMERIC_TYPES

# Magnitude from which a long/integer column's value is surely out of range, for the
# fast path's float comparison (values near the limit take the exact check).
_LIMITS = {name: float(2 ** (bits - 1)) for name, bits in (("long", 64), ("integer", 32))}
_MAX_NAMES_IN_MESSAGE = 20

Extra = Literal["ignore", "reject"]


@dataclass(frozen=True)
class InputColumn:
    """One input column of a model signature: its name, MLflow type and whether it is required."""

    name: str
    type: str
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "required": self.required}


def columns_from_signature(signature: Any) -> list[InputColumn] | None:
    """The named columns of an MLflow signature, or None when it has no column schema
    (no signature, a tensor signature or unnamed columns): such models get pyfunc semantics."""
    if signature is None or signature.inputs is None:
        return None
    inputs = signature.inputs
    if inputs.is_tensor_spec() or not inputs.has_input_names():
        return None
    columns = []
    for spec in inputs.inputs:
        type_name = getattr(spec.type, "name", None) or str(spec.type)
        columns.append(InputColumn(str(spec.name), str(type_name), bool(spec.required)))
    return columns


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_NAMES_IN_MESSAGE])
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"string value {_show(value)}"
    if isinstance(value, (bool, np.bool_)):
        return f"boolean value {_show(value)}"
    if isinstance(value, (int, float, np.number)):
        return f"number {_show(value)}"
    return f"{type(value).__name__} value {_show(value)}"


def _is_null(value: Any) -> bool:
    # pandas' NA is detected by name so that the mapping path never imports pandas.
    return value is None or type(value).__name__ == "NAType"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number, np.bool_))


class InputSchema:
    """A signature compiled for fast checks. ``order`` is the column order of the matrix
    handed to the backend (the estimator's fitted order when it has one)."""

    def __init__(
        self,
        columns: list[InputColumn],
        *,
        extra: Extra = "ignore",
        order: list[str] | None = None,
        missing_ok: bool = True,
    ) -> None:
        if extra not in ("ignore", "reject"):
            raise ValueError(f"extra must be 'ignore' or 'reject', got {extra!r}")
        # A model that cannot take NaN (most scikit-learn estimators) gets its optional
        # columns made required: a clear 400 rather than the model's own error, and
        # ``columns`` (what the server publishes) says so.
        if not missing_ok:
            columns = [replace(c, required=True) for c in columns]
        self.columns = columns
        self.extra = extra
        self.missing_ok = missing_ok
        by_name = {c.name: c for c in columns}
        self.order = list(order) if order is not None else [c.name for c in columns]
        self._ordered = [by_name[n] for n in self.order]
        self._all = frozenset(by_name)
        self._required = [c.name for c in columns if c.required]
        # The fast path: every column numeric (booleans and strings need per-column checks).
        self.numeric = all(c.type in NUMERIC_TYPES for c in columns)
        self.all_required = len(self._required) == len(columns)
        self.optional = [c for c in columns if not c.required]
        self._int_idx = [i for i, c in enumerate(self._ordered) if c.type in _INTEGRAL]
        self._int_limits = np.array([_LIMITS[self._ordered[i].type] for i in self._int_idx])

    # ------------------------------------------------------------------ public

    def to_matrix(
        self, data: Any, dtype: Any = np.float64, *, contiguous: bool = True
    ) -> np.ndarray:
        """An (n, k) array in ``order``; only for numeric schemas. ``contiguous=False``
        allows a column-major (Fortran-ordered) result, which saves a transposing copy
        for consumers that accept it (scikit-learn does; ONNX Runtime does not)."""
        if isinstance(data, Mapping) and self.all_required:
            fast = self._fast_matrix(data)
            if fast is not None:
                if contiguous:
                    return np.ascontiguousarray(fast, dtype=dtype)
                return fast if fast.dtype == dtype else fast.astype(dtype)
        n, checked = self.check(data)
        # Filling rows of a (k, n) array is about twice as fast as writing k strided
        # columns of an (n, k) one; its transpose is the (n, k) matrix, column-major.
        stacked = np.empty((len(self.order), n), dtype=dtype)
        for i, name in enumerate(self.order):
            stacked[i] = checked[name]
        return np.ascontiguousarray(stacked.T) if contiguous else stacked.T

    def to_frame(self, data: Any):  # -> pandas.DataFrame
        """A DataFrame with the signature's column order and dtypes (for pyfunc and
        estimators that need column names)."""
        import pandas as pd

        n, checked = self.check(data)
        frame: dict[str, Any] = {}
        for c in self.columns:
            values = checked[c.name]
            dtype = _FRAME_DTYPES.get(c.type)
            if dtype is not None and not (
                c.type in _INTEGRAL and values.dtype.kind == "f" and np.isnan(values).any()
            ):
                values = values.astype(dtype, copy=False)
            frame[c.name] = values
        return pd.DataFrame(frame, index=pd.RangeIndex(n), copy=False)

    def check(self, data: Any) -> tuple[int, dict[str, np.ndarray]]:
        """Validate ``data``; return its row count and each signature column as a checked
        1-D array (numeric columns as float64, booleans as bool, strings as object)."""
        raw = _columns_of(data)
        self._check_names(raw)
        n = _row_count(raw, self.columns)
        checked: dict[str, np.ndarray] = {}
        for c in self.columns:
            if c.name in raw:
                checked[c.name] = _check_column(c, raw[c.name])
            elif c.type in NUMERIC_TYPES:
                checked[c.name] = np.full(n, np.nan)
            else:
                checked[c.name] = np.full(n, None, dtype=object)
        return n, checked

    # ----------------------------------------------------------------- private

    def _check_names(self, raw: Mapping[str, Any]) -> None:
        missing = [n for n in self._required if n not in raw]
        if missing:
            raise SchemaMismatch(
                f"Missing required column(s) {_names(missing)}.",
                ("" if self.missing_ok else "This model cannot handle missing values. ")
                + "The model expects: "
                + ", ".join(f"{c.name} ({c.type})" for c in self.columns[:_MAX_NAMES_IN_MESSAGE])
                + (" ..." if len(self.columns) > _MAX_NAMES_IN_MESSAGE else "")
                + ".",
            )
        if self.extra == "reject":
            extra = [str(n) for n in raw if n not in self._all]
            if extra:
                raise SchemaMismatch(
                    f"Unexpected column(s) {_names(extra)}: the model's signature does not "
                    "name them.",
                    "Remove them, or drop unknown columns silently with extra='ignore' "
                    "(flowship serve --extra-columns ignore).",
                )

    def _fast_matrix(self, data: Mapping[str, Any]) -> np.ndarray | None:
        """One np.array call over all columns; None sends the caller down the checked path
        (which then raises the precise error, or handles unusual but valid input)."""
        if self.extra == "reject" and len(data) != len(self._all):
            return None
        try:
            stacked = np.array([data[name] for name in self.order])
        except (KeyError, ValueError, TypeError):
            return None
        if stacked.dtype.kind not in "fiu":
            return None
        if stacked.ndim == 1:
            stacked = stacked[:, None]
        elif stacked.ndim != 2:
            return None
        if stacked.shape[1] == 0:
            return None
        matrix = stacked.T if stacked.dtype == np.float64 else stacked.T.astype(np.float64)
        if stacked.dtype.kind == "f" and not np.isfinite(matrix).all():
            return None
        if self._int_idx:
            part = matrix[:, self._int_idx]
            if (part != np.trunc(part)).any() or (np.abs(part) >= self._int_limits).any():
                return None
        return matrix


# --------------------------------------------------------------------- helpers


def _columns_of(data: Any) -> Mapping[str, Any]:
    """The input's columns by name, without copying where the source allows."""
    if isinstance(data, Mapping):
        return data
    module = type(data).__module__
    if module.startswith("pyarrow"):
        import pyarrow as pa

        if isinstance(data, (pa.Table, pa.RecordBatch)):
            return {name: data.column(i) for i, name in enumerate(data.schema.names)}
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            if not data.columns.is_unique:
                dup = data.columns[data.columns.duplicated()].unique().tolist()
                raise SchemaMismatch(
                    f"Duplicate column(s) {_names([str(d) for d in dup])}.",
                    "Give every column a unique name.",
                )
            return {str(name): data[name] for name in data.columns}
    raise InvalidInput(
        f"Unsupported input of type {type(data).__name__}.",
        "Pass a pandas DataFrame, a pyarrow Table or RecordBatch, or a mapping of column "
        "name to a list or NumPy array of values.",
    )


def _row_count(raw: Mapping[str, Any], columns: list[InputColumn]) -> int:
    lengths: dict[str, int] = {}
    for c in columns:
        if c.name in raw:
            lengths[c.name] = _length(c.name, raw[c.name])
    if not lengths:
        raise InvalidInput("Input has no columns the model uses.", "Send the model's columns.")
    values = set(lengths.values())
    if len(values) > 1:
        (a, na), (b, nb) = (
            sorted(lengths.items(), key=lambda kv: -kv[1])[0],
            min(lengths.items(), key=lambda kv: kv[1]),
        )
        raise InvalidInput(
            f"Columns have different lengths: {a!r} has {na} rows, {b!r} has {nb}.",
            "Send the same number of values for every column.",
        )
    n = values.pop()
    if n == 0:
        raise InvalidInput("Input has no rows.", "Send at least one row.")
    return n


def _is_scalar(values: Any) -> bool:
    return values is None or isinstance(values, (str, bytes, bool, int, float, np.generic))


def _length(name: str, values: Any) -> int:
    if _is_scalar(values):
        return 1  # one row
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            return 1
        if values.ndim != 1:
            raise SchemaMismatch(
                f"Column {name!r} must be a flat list of values, got an array of shape "
                f"{values.shape}.",
                "Send one value per row.",
            )
    elif isinstance(values, Mapping) or not hasattr(values, "__len__"):
        raise SchemaMismatch(
            f"Column {name!r} must be a list of values, got {type(values).__name__}.",
            "Send one value per row.",
        )
    return len(values)


def _as_array(column: InputColumn, values: Any) -> np.ndarray:
    module = type(values).__module__
    if module.startswith("pyarrow"):
        import pyarrow as pa

        kind = values.type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
        ):
            raise SchemaMismatch(
                f"Column {column.name!r} expects {column.type}, got Arrow type {kind}.",
                f"Cast it to {column.type} first.",
            )
        return values.to_numpy(zero_copy_only=False)
    if module.startswith("pandas"):
        return values.to_numpy()
    if _is_scalar(values) or (isinstance(values, np.ndarray) and values.ndim == 0):
        values = [values]
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, RecursionError):
        array = None
    if (
        array is not None
        and array.dtype.kind == "f"
        and column.type in _INTEGRAL
        and not isinstance(values, np.ndarray)
        and any(type(v) is int for v in values)
    ):
        array = None  # NumPy made floats of ints beyond int64 (mixed with others): keep them
    if array is None or (array.dtype.kind in "US" and not isinstance(values, np.ndarray)):
        # NumPy turns [1.0, "abc"] into strings and ragged lists into errors; an object
        # array keeps each value as sent, so the check can name the one that is wrong.
        array = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            array[i] = value
    if array.ndim != 1:
        raise SchemaMismatch(
            f"Column {column.name!r} must be a flat list of values, got nested values of "
            f"shape {array.shape}.",
            "Send one value per row.",
        )
    return array


def _wrong(column: InputColumn, value: Any, row: int) -> SchemaMismatch:
    return SchemaMismatch(
        f"Column {column.name!r} expects {column.type}, got {_describe(value)} in row {row}.",
        f"Send {column.type} values in column {column.name!r}.",
    )


def _missing(column: InputColumn, row: int, what: str = "NaN") -> SchemaMismatch:
    return SchemaMismatch(
        f"Column {column.name!r} is required but has a missing value ({what}) in row {row}.",
        "Fill in the value or drop the row.",
    )


def _check_column(column: InputColumn, values: Any) -> np.ndarray:
    array = _as_array(column, values)
    if column.type in NUMERIC_TYPES:
        return _check_numeric(column, array)
    if column.type == "boolean":
        return _check_boolean(column, array)
    if column.type == "string":
        return _check_string(column, array)
    # binary, datetime and nested types: passed through for the model to judge.
    return array


def _check_numeric(column: InputColumn, array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if column.type in _INTEGRAL and kind in "iuO":  # exactly, before any float64 rounding
        outside = types.out_of_range(column.type, array)
        if outside.any():
            raise _out_of_range(column, array, int(np.flatnonzero(outside)[0]))
    if kind == "O":
        for row, value in enumerate(array):
            if _is_null(value):
                if column.required:
                    raise _missing(column, row, "null")
            elif not _is_number(value):
                raise _wrong(column, value, row)
        array = np.array([np.nan if _is_null(v) else v for v in array], dtype=np.float64)
        kind = "f"
    elif kind not in "fiub":
        raise _wrong(column, array[0], 0)
    result = array.astype(np.float64, copy=False)
    if kind == "f":
        finite = np.isfinite(result)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            infinite = np.isinf(result[bad])
            if infinite.any():
                row = int(bad[np.flatnonzero(infinite)[0]])
                raise SchemaMismatch(
                    f"Column {column.name!r} has an infinite value ({_show(result[row])}) in "
                    f"row {row}.",
                    "Send finite numbers.",
                )
            if column.required:
                raise _missing(column, int(bad[0]))
        if column.type in _INTEGRAL:
            fraction = finite & (result != np.trunc(np.where(finite, result, 0)))
            if fraction.any():
                row = int(np.flatnonzero(fraction)[0])
                raise SchemaMismatch(
                    f"Column {column.name!r} expects {column.type}, got non-integer value "
                    f"{_show(result[row])} in row {row}.",
                    f"Send whole numbers in column {column.name!r}.",
                )
            outside = types.out_of_range(column.type, result)
            if outside.any():
                raise _out_of_range(column, result, int(np.flatnonzero(outside)[0]))
    return result


def _out_of_range(column: InputColumn, values: np.ndarray, row: int) -> SchemaMismatch:
    return SchemaMismatch(
        f"Column {column.name!r} expects {column.type}, got out-of-range value "
        f"{_show(values[row])} in row {row}.",
        f"Send {column.type} values, {types.range_text(column.type)}.",
    )


def _check_boolean(column: InputColumn, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind == "O":
        for row, value in enumerate(array):
            if _is_null(value):
                if column.required:
                    raise _missing(column, row, "null")
            elif not isinstance(value, (bool, np.bool_)):
                raise _wrong(column, value, row)
        return array
    raise _wrong(column, array[0], 0)


def _check_string(column: InputColumn, array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if kind in "UT":
        return array.astype(object)
    if kind == "O":
        for row, value in enumerate(array):
            if _is_null(value) or (isinstance(value, float) and np.isnan(value)):
                if column.required:
                    raise _missing(column, row, "null")
            elif not isinstance(value, str):
                raise _wrong(column, value, row)
        return array
    raise _wrong(column, array[0], 0)
