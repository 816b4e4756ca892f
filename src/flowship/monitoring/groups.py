"""Drift per group: each value of a column (``--by variant``) compared on its own.

Each group is a narrowed view of the same sources (``where ... AND variant = 'b'``), so
memory stays bounded per group and the groups are read one after the other. When the
baseline has the column too, each group is compared with the same group of the
baseline (a baseline window of the same prediction log); otherwise with the whole
baseline (a training sample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowship.errors import InvalidInput
from flowship.monitoring.drift.result import SEVERITY

MAX_GROUPS = 100


def drift_by(column: str, reference: Any, current: Any, method: Callable[[], Any]) -> dict:
    """One report whose columns are ``COLUMN=VALUE/feature`` for every group, and whose
    ``groups`` hold each group's own report."""
    from flowship.monitoring.sources import quote_name, sql_literal

    if column not in current.columns:
        raise InvalidInput(
            f"The current data has no column {column!r} to group by (--by).",
            f"Its columns are: {', '.join(current.columns[:20])}.",
        )
    values = current.distinct(column, limit=MAX_GROUPS)
    if len(values) > MAX_GROUPS:
        raise InvalidInput(
            f"Column {column!r} has more than {MAX_GROUPS} distinct values to group by.",
            "Group by a column with few values (variant, region), or filter with --where.",
        )
    grouped_baseline = column in reference.columns
    groups = []
    for value in values:
        condition = (
            f"{quote_name(column)} IS NULL"
            if value is None
            else f"{quote_name(column)} = {sql_literal(value)}"
        )
        ref = reference.narrowed(condition) if grouped_baseline else reference
        drift = method()
        if drift.columns is None:  # the group's own column is constant within it
            drift.columns = [c for c in reference.columns if c != column]
        report = drift.fit_score(ref, current.narrowed(condition)).to_dict()
        report["group"] = {"column": column, "value": _plain(value)}
        groups.append(report)
    if not groups:
        raise InvalidInput(
            f"The current data ({current.label()}) has no rows.", "Widen the --where condition."
        )
    return _combine(column, groups)


def _combine(column: str, groups: list[dict]) -> dict:
    columns = []
    for report in groups:
        prefix = f"{column}={report['group']['value']}/"
        columns += [{**c, "name": prefix + c["name"]} for c in report["columns"]]
    columns.sort(key=lambda c: (SEVERITY[c["status"]], -(c.get("psi") or 0.0), c["name"]))
    statuses = [r["status"] for r in groups]
    status = min(statuses, key=lambda s: SEVERITY[s])
    if status == "insufficient_data" and any(s == "ok" for s in statuses):
        status = "ok"
    first = groups[0]
    drifted = [c["name"] for c in columns if c["drifted"]]
    summary = "; ".join(f"{column}={r['group']['value']}: {r['summary']}" for r in groups)
    return {
        "kind": "drift",
        "method": first["method"],
        "created_at": first["created_at"],
        "status": status,
        "dataset_drift": any(r["dataset_drift"] for r in groups),
        "drift_share": max((r["drift_share"] or 0.0) for r in groups),
        "n_columns": len(columns),
        "n_evaluated": sum(r["n_evaluated"] for r in groups),
        "n_drifted": len(drifted),
        "drifted_columns": drifted,
        "n_reference": sum(r["n_reference"] for r in groups),
        "n_current": sum(r["n_current"] for r in groups),
        "thresholds": first["thresholds"],
        "summary": summary,
        "by": column,
        "columns": columns,
        "skipped_columns": first["skipped_columns"],
        "groups": groups,
    }


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)
