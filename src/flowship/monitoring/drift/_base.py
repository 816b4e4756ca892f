"""What every drift method shares: parameters, column selection, the fitted check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from flowship.errors import UsageError
from flowship.monitoring.drift.columns import select_columns
from flowship.monitoring.drift.result import ColumnDrift, DriftReport


class DriftMethod:
    """scikit-learn shaped: ``__init__`` stores parameters, ``fit(reference)`` learns the
    baseline and returns self, ``score(current)`` returns a ``DriftReport``."""

    name = "base"

    def __init__(
        self,
        *,
        columns: Sequence[str] | None = None,
        column_types: Mapping[str, str] | None = None,
        prediction_columns: Sequence[str] | None = None,
        drift_share: float = 0.5,
        min_rows: int = 50,
    ) -> None:
        self.columns = columns
        self.column_types = column_types
        self.prediction_columns = prediction_columns
        self.drift_share = drift_share
        self.min_rows = min_rows

    def thresholds(self) -> dict[str, Any]:
        return {"drift_share": self.drift_share, "min_rows": self.min_rows}

    def fit(self, reference: pd.DataFrame, current: pd.DataFrame | None = None) -> DriftMethod:
        """Learn the baseline. ``current``, when given, is only used to check up front
        that both sides have the same columns and types."""
        names, skipped = select_columns(
            reference,
            reference if current is None else current,
            columns=self.columns,
            column_types=dict(self.column_types or {}),
        )
        self.n_reference_ = int(reference.shape[0])
        self.skipped_ = skipped
        self.reference_stats_ = {name: self._fit_column(name, reference[name]) for name in names}
        return self

    def score(self, current: pd.DataFrame) -> DriftReport:
        if not hasattr(self, "reference_stats_"):
            raise UsageError(
                f"This {type(self).__name__} has not seen a baseline yet.",
                "Call fit(reference) before score(current).",
            )
        absent = [c for c in self.reference_stats_ if c not in current.columns]
        if absent:
            raise UsageError(
                f"Column(s) {', '.join(map(repr, absent))} missing from the current data.",
                "Compare only the columns both sides have: pass --columns a,b,c.",
            )
        results = self._score_columns(current)
        return DriftReport(
            method=self.name,
            columns=results,
            thresholds=self.thresholds(),
            n_reference=self.n_reference_,
            n_current=int(current.shape[0]),
            created_at=datetime.now(UTC),
            skipped_columns=self.skipped_,
        )

    def fit_score(self, reference: pd.DataFrame, current: pd.DataFrame) -> DriftReport:
        return self.fit(reference, current).score(current)

    def _fit_column(self, name: str, series: pd.Series) -> Any:
        raise NotImplementedError

    def _score_columns(self, current: pd.DataFrame) -> list[ColumnDrift]:
        raise NotImplementedError

    def _too_few_rows(self, n_current: int) -> str | None:
        if self.n_reference_ < self.min_rows:
            return f"only {self.n_reference_} baseline rows (need {self.min_rows})"
        if n_current < self.min_rows:
            return f"only {n_current} current rows (need {self.min_rows})"
        return None
