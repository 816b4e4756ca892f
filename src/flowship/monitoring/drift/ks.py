"""``--method ks``: the seed's check, reproduced exactly for those who want it.

Per numerical column, scipy's two-sample Kolmogorov-Smirnov test on the raw columns
(``ks_2samp(baseline[col], current[col])``, as the seed calls it) and drift when
p < ``alpha``, with no correction across columns and no effect size. On large samples
it flags differences too small to matter; the default rule exists for that reason.
Non-numerical columns are skipped (the seed's call would fail on them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy.stats import ks_2samp

from flowship.monitoring.drift._base import DriftMethod
from flowship.monitoring.drift.columns import role_of, value_type
from flowship.monitoring.drift.result import ColumnDrift


class KSDrift(DriftMethod):
    name = "ks"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        columns: Sequence[str] | None = None,
        column_types: Mapping[str, str] | None = None,
        prediction_columns: Sequence[str] | None = None,
        drift_share: float = 0.5,
        min_rows: int = 50,
    ) -> None:
        super().__init__(
            columns=columns,
            column_types=column_types,
            prediction_columns=prediction_columns,
            drift_share=drift_share,
            min_rows=min_rows,
        )
        self.alpha = alpha

    def thresholds(self) -> dict[str, Any]:
        return {**super().thresholds(), "alpha": self.alpha}

    def fit(self, reference: pd.DataFrame, current: pd.DataFrame | None = None) -> KSDrift:
        super().fit(reference, current)
        for name in list(self.reference_stats_):
            if self.reference_stats_[name] is None:
                del self.reference_stats_[name]
                self.skipped_.append({"name": name, "reason": "ks compares numbers only"})
        return self

    def _fit_column(self, name: str, series: pd.Series) -> pd.Series | None:
        return series if value_type(series) in ("number", "bool") else None

    def _score_columns(self, current: pd.DataFrame) -> list[ColumnDrift]:
        n_current = int(current.shape[0])
        too_few = self._too_few_rows(n_current)
        results = []
        for name, reference in self.reference_stats_.items():
            series = current[name]
            col = ColumnDrift(
                name=name,
                kind="numerical",
                role=role_of(name, self.prediction_columns),
                status="ok",
                test="ks",
                n_reference=int(reference.shape[0]),
                n_current=n_current,
                missing_rate_reference=float(reference.isna().mean()),
                missing_rate_current=float(series.isna().mean()) if n_current else None,
            )
            reason = too_few
            if reason is None and reference.isna().all():
                reason = "all values missing in the baseline"
            if reason is None and series.isna().all():
                reason = "all values missing in the current data"
            if reason:
                col.status, col.reason, col.test = "insufficient_data", reason, "none"
                results.append(col)
                continue
            statistic, p_value = ks_2samp(reference, series)
            col.statistic, col.p_value = float(statistic), float(p_value)
            if math.isnan(col.p_value):
                col.reason = "scipy returned NaN (missing values); the seed counts it as no drift"
            col.status = "drift" if col.p_value < self.alpha else "ok"
            results.append(col)
        return results
