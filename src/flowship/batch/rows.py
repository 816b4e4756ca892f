"""Row-level checks of one input batch against the model signature.

A row that cannot be scored (a NULL id, a missing value in a required feature, a cell
that is not a number where one is expected, a fraction in an integer column) is not an
error for the whole job: it becomes a rejects row with the first reason found, and the
job fails only if the rejected share passes its threshold. Whole-column problems (a
missing column, a string column where the model wants numbers) are caught before
scoring starts by ``plan.check_columns``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowship.predict import types
from flowship.predict.types import INTEGRAL, NUMERIC

# A column a source adds to a batch when some of its rows could not be read as their
# column's type (a SQL value unlike the first rows'): the reason, else null.
SOURCE_REASON = "__flowship_source_reason__"
_TRUE = {"true", "1", "t", "yes", "y"}
_FALSE = {"false", "0", "f", "no", "n"}


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # the MLflow type from the signature
    required: bool


@dataclass
class Checked:
    """One batch after the row checks: the scorable rows' features, and why the others
    were refused (``reasons[i]`` is None for a good row)."""

    features: dict[str, np.ndarray]
    good: np.ndarray  # bool mask over the batch
    reasons: np.ndarray | None  # object array of str | None, or None when all are good


def check_rows(
    batch: pa.RecordBatch, *, id_column: str, features: list[Feature], text: bool
) -> Checked:
    n = batch.num_rows
    reasons: np.ndarray | None = None

    def refuse(mask: np.ndarray, reason: str) -> None:
        nonlocal reasons
        if not mask.any():
            return
        if reasons is None:
            reasons = np.full(n, None, dtype=object)
        fresh = mask & (reasons == None)  # noqa: E711  (elementwise on an object array)
        reasons[fresh] = reason

    if SOURCE_REASON in batch.schema.names:  # the first check, so its reasons come first
        why = batch.column(SOURCE_REASON)
        if why.null_count < n:
            reasons = np.array(why.to_pylist(), dtype=object)
    ids = batch.column(id_column)
    if ids.null_count:
        refuse(ids.is_null().to_numpy(zero_copy_only=False), f"{id_column} (the id) is null")
    if text and ids.null_count < n:
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), False)
        refuse(empty.to_numpy(zero_copy_only=False), f"{id_column} (the id) is empty")

    values: dict[str, np.ndarray] = {}
    for feature in features:
        column = batch.column(feature.name)
        if text:
            column, unparsable = _parse_text(column, feature)
            refuse(unparsable, f"{feature.name} is not a valid {feature.type}")
        if feature.type in INTEGRAL and pa.types.is_integer(column.type):
            exact = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
            refuse(
                types.out_of_range(feature.type, exact),
                f"{feature.name} is out of range for {feature.type} "
                f"({types.range_text(feature.type)})",
            )
        array, bad = _to_numpy(column, feature)
        if bad is not None:
            refuse(bad, _why(feature))
        values[feature.name] = array

    good = np.ones(n, dtype=bool) if reasons is None else (reasons == None)  # noqa: E711
    return Checked(values, good, reasons)


def _why(feature: Feature) -> str:
    if feature.type in INTEGRAL:
        return f"{feature.name} is missing, infinite or not a whole number"
    if feature.type in NUMERIC:
        return f"{feature.name} is missing or infinite"
    return f"{feature.name} is missing"


def _to_numpy(column: pa.Array, feature: Feature) -> tuple[np.ndarray, np.ndarray | None]:
    """The column as the Predictor's fast path wants it, and a mask of unusable rows."""
    if feature.type in NUMERIC:
        if pa.types.is_integer(column.type) and not column.null_count:
            # NumPy's conversion skips Arrow's per-value check that the int fits a double
            # exactly (ten times slower); a feature beyond 2**53 rounds, as in pandas.
            array = column.to_numpy().astype(np.float64)
        else:
            as_float = column if pa.types.is_float64(column.type) else pc.cast(column, pa.float64())
            array = as_float.to_numpy(zero_copy_only=False)  # nulls become NaN
        finite = np.isfinite(array)
        bad = None if finite.all() else ~finite
        if not feature.required and bad is not None:
            bad = np.isinf(array)  # NaN is allowed in an optional column
            bad = bad if bad.any() else None
        if feature.type in INTEGRAL and pa.types.is_floating(column.type):
            fraction = finite & (array != np.trunc(np.where(finite, array, 0)))
            if fraction.any():
                bad = fraction if bad is None else (bad | fraction)
        return array, bad
    array = column.to_numpy(zero_copy_only=False)
    if column.null_count and feature.required:
        return array, column.is_null().to_numpy(zero_copy_only=False)
    return array, None


def _parse_text(column: pa.Array, feature: Feature) -> tuple[pa.Array, np.ndarray]:
    """Parse a CSV text column into the signature's type; unparsable cells become null
    and are flagged (an empty cell is a null, judged later as a missing value)."""
    target = types.arrow_type(feature.type) or pa.string()
    no_bad = np.zeros(len(column), dtype=bool)
    if target == pa.string():
        return column, no_bad
    if target == pa.bool_():
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        is_true = pc.is_in(lowered, value_set=pa.array(sorted(_TRUE)))
        is_false = pc.is_in(lowered, value_set=pa.array(sorted(_FALSE)))
        known = pc.or_(is_true, is_false)
        parsed = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
        bad = pc.and_(pc.invert(known), pc.is_valid(column))
        return parsed, bad.to_numpy(zero_copy_only=False)
    try:
        return pc.cast(column, target), no_bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some cell does not parse: find which ones, one by one (only on a bad batch).
    values, bad = [], no_bad.copy()
    for i, text in enumerate(column.to_pylist()):
        try:
            values.append(None if text is None else pc.cast(pa.array([text]), target)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            bad[i] = True
    return pa.array(values, type=target), bad
