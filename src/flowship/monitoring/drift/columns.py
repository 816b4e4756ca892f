"""Which columns a drift check compares, and whether each is numerical or categorical."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd
from pandas.api import types as ptypes

from flowship.errors import InvalidInput

Kind = Literal["numerical", "categorical"]
KINDS: tuple[str, ...] = ("numerical", "categorical")
# Numbers with this few distinct values in the baseline are codes, not quantities.
MAX_CODES = 5
PREDICTION_NAMES = ("prediction", "probability")


def value_type(series: pd.Series) -> str:
    """What a column holds, coarsely: number, bool, datetime or text."""
    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_numeric_dtype(dtype):
        return "number"
    if ptypes.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "datetime"
    return "text"


def select_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None,
    column_types: Mapping[str, str],
) -> tuple[list[str], list[dict[str, str]]]:
    """The columns to compare and the ones skipped (with why). Raises ``InvalidInput``
    for columns missing from one side, different types on each side, or a bad override."""
    if reference.shape[0] == 0:
        raise InvalidInput("The baseline has no rows.", "Point --baseline at a non-empty sample.")
    wanted = list(columns) if columns else list(reference.columns)
    for side, frame, option in (
        ("baseline", reference, "--baseline"),
        ("current", current, "--current"),
    ):
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise InvalidInput(
                f"Column(s) {', '.join(map(repr, absent))} missing from the {side} data "
                f"({option}).",
                "Compare only the columns both sides have: pass --columns a,b,c.",
            )
    if not columns:
        extra = [c for c in current.columns if c not in reference.columns]
        if extra:
            raise InvalidInput(
                f"Column(s) {', '.join(map(repr, extra))} are in the current data but not in "
                "the baseline.",
                "Compare only the columns both sides have: pass --columns a,b,c.",
            )
    unknown = [c for c in column_types if c not in wanted]
    if unknown:
        raise InvalidInput(
            f"Type override for unknown column(s): {', '.join(map(repr, unknown))}.",
            f"Override only compared columns: {', '.join(wanted[:8])}.",
        )
    bad = {c: t for c, t in column_types.items() if t not in KINDS}
    if bad:
        name, kind = next(iter(bad.items()))
        raise InvalidInput(
            f"Column type {kind!r} for {name!r} is not one of numerical, categorical.",
            "Write overrides as COLUMN=numerical or COLUMN=categorical.",
        )
    chosen: list[str] = []
    skipped: list[dict[str, str]] = []
    for name in wanted:
        ref, cur = reference[name], current[name]
        ref_type, cur_type = value_type(ref), value_type(cur)
        # An all-missing side has no real type (CSV reads it as float); it is reported
        # as insufficient data rather than refused as a type clash.
        if ref_type != cur_type and ref.notna().any() and cur.notna().any():
            raise InvalidInput(
                f"Column {name!r} holds {ref_type} values in the baseline but {cur_type} "
                "values in the current data.",
                "Fix the source so both sides agree, or leave the column out with --columns.",
            )
        if ref_type == "datetime" and name not in column_types:
            skipped.append({"name": name, "reason": "timestamps move on by design"})
            continue
        if column_types.get(name) == "numerical" and ref_type not in ("number", "bool"):
            raise InvalidInput(
                f"Column {name!r} holds {ref_type} values and cannot be treated as numerical.",
                f"Drop the override {name}=numerical.",
            )
        chosen.append(name)
    return chosen, skipped


def role_of(
    name: str, prediction_columns: Sequence[str] | None
) -> Literal["feature", "prediction"]:
    names = PREDICTION_NAMES if prediction_columns is None else prediction_columns
    return "prediction" if name in names else "feature"
