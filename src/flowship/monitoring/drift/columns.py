"""Which columns a drift check compares, and whether each is numerical or categorical.

Decided from the two sides' Arrow schemas, before any row is read, except for one case
that needs the counts: a column whose type differs by side is refused only when both
sides hold values (an all-missing column has no real type: CSV readers guess one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from flowship.errors import InvalidInput

Kind = Literal["numerical", "categorical"]
KINDS: tuple[str, ...] = ("numerical", "categorical")
# Numbers with this few distinct values in the baseline are codes, not quantities.
MAX_CODES = 5
PREDICTION_NAMES = ("prediction", "probability")


def value_type(dtype: pa.DataType) -> str:
    """What a column holds, coarsely: number, bool, datetime, text or null (no type)."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_null(dtype):
        return "null"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if (
        pa.types.is_timestamp(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_time(dtype)
        or pa.types.is_duration(dtype)
    ):
        return "datetime"
    return "text"


@dataclass
class Selection:
    """The compared columns, their value types per side, what was skipped and why."""

    names: list[str]
    reference_types: dict[str, str]
    current_types: dict[str, str]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def clashes(self) -> list[str]:
        """Columns whose types differ by side (refused unless one side is all missing)."""
        return [
            n
            for n in self.names
            if self.reference_types[n] != self.current_types[n]
            and "null" not in (self.reference_types[n], self.current_types[n])
        ]


def select_columns(
    reference: pa.Schema,
    current: pa.Schema,
    *,
    columns: Sequence[str] | None,
    column_types: Mapping[str, str],
) -> Selection:
    """The columns to compare. Raises ``InvalidInput`` for columns missing from one side
    or a bad override."""
    wanted = list(columns) if columns else list(reference.names)
    for side, schema, option in (
        ("baseline", reference, "--baseline"),
        ("current", current, "--current"),
    ):
        absent = [c for c in wanted if c not in schema.names]
        if absent:
            raise InvalidInput(
                f"Column(s) {', '.join(map(repr, absent))} missing from the {side} data "
                f"({option}).",
                "Compare only the columns both sides have: pass --columns a,b,c.",
            )
    if not columns:
        extra = [c for c in current.names if c not in reference.names]
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
    chosen = Selection([], {}, {})
    for name in wanted:
        ref_type = value_type(reference.field(name).type)
        cur_type = value_type(current.field(name).type)
        if ref_type == "datetime" and name not in column_types:
            chosen.skipped.append({"name": name, "reason": "timestamps move on by design"})
            continue
        if column_types.get(name) == "numerical" and ref_type not in ("number", "bool", "null"):
            raise InvalidInput(
                f"Column {name!r} holds {ref_type} values and cannot be treated as numerical.",
                f"Drop the override {name}=numerical.",
            )
        chosen.names.append(name)
        chosen.reference_types[name] = ref_type
        chosen.current_types[name] = cur_type
    return chosen


def type_clash(name: str, reference_type: str, current_type: str) -> InvalidInput:
    return InvalidInput(
        f"Column {name!r} holds {reference_type} values in the baseline but {current_type} "
        "values in the current data.",
        "Fix the source so both sides agree, or leave the column out with --columns.",
    )


def role_of(
    name: str, prediction_columns: Sequence[str] | None
) -> Literal["feature", "prediction"]:
    names = PREDICTION_NAMES if prediction_columns is None else prediction_columns
    return "prediction" if name in names else "feature"
