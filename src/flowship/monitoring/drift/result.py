"""What a drift check returns: one ``ColumnDrift`` per column and a ``DriftReport``.

``DriftReport.to_dict()`` is the JSON report documented in docs/monitoring.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["drift", "warn", "ok", "insufficient_data"]
# Columns are listed most severe first; "insufficient_data" needs a look, "ok" does not.
SEVERITY: dict[str, int] = {"drift": 0, "warn": 1, "insufficient_data": 2, "ok": 3}


@dataclass
class ColumnDrift:
    name: str
    kind: Literal["numerical", "categorical"]
    role: Literal["feature", "prediction"]
    status: Status
    test: str
    reason: str | None = None
    statistic: float | None = None
    dof: int | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    psi: float | None = None
    wasserstein_normalized: float | None = None
    jensen_shannon: float | None = None
    n_reference: int = 0
    n_current: int = 0
    missing_rate_reference: float | None = None
    missing_rate_current: float | None = None
    bins: dict[str, Any] | None = None
    value_set: dict[str, Any] | None = None
    approximation: dict[str, Any] | None = None
    """Set when the statistic was approximated (KS beyond memory), with its bounds."""

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        body = {k: _clean(v) for k, v in asdict(self).items()}
        body["drifted"] = self.drifted
        return body


@dataclass
class DriftReport:
    method: str
    columns: list[ColumnDrift]
    thresholds: dict[str, Any]
    n_reference: int
    n_current: int
    created_at: datetime
    skipped_columns: list[dict[str, str]] = field(default_factory=list)

    @property
    def evaluated(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.status != "insufficient_data"]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]

    @property
    def drift_share(self) -> float | None:
        evaluated = self.evaluated
        return len(self.drifted_columns) / len(evaluated) if evaluated else None

    @property
    def dataset_drift(self) -> bool:
        share = self.drift_share
        return share is not None and share >= self.thresholds["drift_share"]

    @property
    def status(self) -> Status:
        if not self.evaluated:
            return "insufficient_data"
        if self.dataset_drift or self.drifted_columns:
            return "drift"
        return "warn" if any(c.status == "warn" for c in self.columns) else "ok"

    def sorted_columns(self) -> list[ColumnDrift]:
        return sorted(self.columns, key=lambda c: (SEVERITY[c.status], -(c.psi or 0.0), c.name))

    def summary(self) -> str:
        if self.status == "insufficient_data":
            return "Not enough data to judge drift in any column."
        n = len(self.evaluated)
        drifted = self.drifted_columns
        text = f"{len(drifted)} of {n} columns drifted"
        if drifted:
            text += f" ({', '.join(drifted[:10])}{', ...' if len(drifted) > 10 else ''})"
        verdict = "dataset drift" if self.dataset_drift else "no dataset drift"
        return f"{text}; {verdict} (threshold {self.thresholds['drift_share']:.0%} of columns)."

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "drift",
            "method": self.method,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "drift_share": _clean(self.drift_share),
            "n_columns": len(self.columns),
            "n_evaluated": len(self.evaluated),
            "n_drifted": len(self.drifted_columns),
            "drifted_columns": self.drifted_columns,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "thresholds": self.thresholds,
            "summary": self.summary(),
            "columns": [c.to_dict() for c in self.sorted_columns()],
            "skipped_columns": self.skipped_columns,
        }


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: report them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
