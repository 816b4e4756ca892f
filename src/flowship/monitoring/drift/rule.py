"""The default drift rule, built not to cry wolf on large samples.

A column drifts only when both hold:

1. a chi-square homogeneity test on shared bins (reference-quantile bins for numbers,
   categories for categoricals, with out-of-range, unseen and missing as bins of their
   own) is significant after Benjamini-Hochberg correction across columns at ``q``;
2. the effect is large enough to matter: PSI >= ``psi_alert`` (status ``drift``), or
   PSI >= ``psi_warn`` (status ``warn``, reported but not counted as drift).

At n = 1,000,000 every test is significant for differences nobody cares about; the PSI
floor is what keeps those columns ``ok``. At n = 60 PSI is noisy; the test is what keeps
those columns ``ok``. A constant baseline column gets an exact "value set changed" check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowship.monitoring.drift._base import DriftMethod
from flowship.monitoring.drift.binning import (
    CategoricalBins,
    NumericBins,
    as_float,
    sorted_sample,
)
from flowship.monitoring.drift.columns import MAX_CODES, role_of, value_type
from flowship.monitoring.drift.distances import (
    jensen_shannon,
    normalized_wasserstein,
    wasserstein_sorted,
)
from flowship.monitoring.drift.psi import psi
from flowship.monitoring.drift.result import ColumnDrift
from flowship.monitoring.drift.stattests import benjamini_hochberg, chi2_homogeneity


@dataclass
class _Reference:
    name: str
    kind: str
    role: str
    n: int
    missing: int
    bins: NumericBins | CategoricalBins | None = None
    counts: np.ndarray | None = None
    std: float = float("nan")
    sample: np.ndarray | None = None
    constant: Any = None
    reason: str | None = None


class DefaultDrift(DriftMethod):
    """Chi-square on shared bins, BH-corrected, AND a PSI threshold (see module doc)."""

    name = "default"

    def __init__(
        self,
        *,
        bins: int = 10,
        q: float = 0.05,
        psi_warn: float = 0.1,
        psi_alert: float = 0.25,
        max_categories: int = 50,
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
        self.bins = bins
        self.q = q
        self.psi_warn = psi_warn
        self.psi_alert = psi_alert
        self.max_categories = max_categories

    def thresholds(self) -> dict[str, Any]:
        return {
            **super().thresholds(),
            "q": self.q,
            "psi_warn": self.psi_warn,
            "psi_alert": self.psi_alert,
            "bins": self.bins,
            "max_categories": self.max_categories,
        }

    def _fit_column(self, name: str, series: pd.Series) -> _Reference:
        role = role_of(name, self.prediction_columns)
        override = (self.column_types or {}).get(name)
        missing = int(series.isna().sum())
        n = int(series.shape[0])
        kind = "numerical" if value_type(series) == "number" else "categorical"
        if override:
            kind = override
        ref = _Reference(name, kind, role, n, missing)
        if missing == n:
            ref.reason = "all values missing in the baseline"
            return ref
        if kind == "numerical":
            values = as_float(series)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                ref.reason = "no finite values in the baseline"
                return ref
            sample = sorted_sample(values)
            # Few distinct values in the sample may still hide many in the column; only
            # then count them all.
            step = max(1, sample.size // 1000)
            if (
                not override
                and np.unique(sample[::step]).size <= MAX_CODES
                and np.unique(finite).size <= MAX_CODES
            ):
                ref.kind = "categorical"
                return self._fit_categorical(ref, series)
            bins = NumericBins.fit(values, sample, bins=self.bins)
            if bins.edges.size == 1:
                ref.constant = [bins.edges[0].item()]
                return ref
            ref.bins, ref.sample = bins, sample
            ref.counts = bins.count(values)
            ref.std = float(np.std(finite))
            return ref
        return self._fit_categorical(ref, series)

    def _fit_categorical(self, ref: _Reference, series: pd.Series) -> _Reference:
        bins = CategoricalBins.fit(series, max_categories=self.max_categories)
        if len(bins.categories) == 1:
            ref.constant = [bins.categories[0]]
            return ref
        ref.bins = bins
        ref.counts = bins.count(series)
        return ref

    def _score_columns(self, current: pd.DataFrame) -> list[ColumnDrift]:
        n_current = int(current.shape[0])
        too_few = self._too_few_rows(n_current)
        results = []
        for name, ref in self.reference_stats_.items():
            series = current[name]
            missing = int(series.isna().sum())
            col = ColumnDrift(
                name=name,
                kind=ref.kind,  # type: ignore[arg-type]
                role=ref.role,  # type: ignore[arg-type]
                status="ok",
                test="chi2",
                n_reference=ref.n,
                n_current=n_current,
                missing_rate_reference=ref.missing / ref.n if ref.n else None,
                missing_rate_current=missing / n_current if n_current else None,
            )
            reason = too_few or ref.reason
            if reason is None and missing == n_current:
                reason = "all values missing in the current data"
            if reason:
                col.status, col.reason, col.test = "insufficient_data", reason, "none"
            elif ref.constant is not None:
                self._value_set(col, ref, series)
            else:
                self._compare(col, ref, series)
            results.append(col)
        self._decide(results)
        return results

    def _value_set(self, col: ColumnDrift, ref: _Reference, series: pd.Series) -> None:
        present = series.dropna()
        if ref.kind == "numerical":
            present = pd.Series(as_float(present))
        new = present[~present.isin(ref.constant)]
        share = len(new) / len(present)
        col.test = "value_set"
        col.reason = "constant baseline: compared value sets instead of distributions"
        col.value_set = {
            "reference": [_plain(v) for v in ref.constant],
            "new_values": [_plain(v) for v in pd.unique(new)[:10]],
            "new_value_share": share,
        }
        col.status = "drift" if share > 0 else "ok"

    def _compare(self, col: ColumnDrift, ref: _Reference, series: pd.Series) -> None:
        bins = ref.bins
        if isinstance(bins, NumericBins):
            values = as_float(series)
            ref_counts, cur_counts = ref.counts, bins.count(values)
            distance = wasserstein_sorted(ref.sample, sorted_sample(values, seed=1))
            col.wasserstein_normalized = normalized_wasserstein(distance, ref.std)
            col.bins = {"edges": bins.edges.tolist()}
        else:
            ref_counts, cur_counts = ref.counts, bins.count(series)
            col.bins = {"unseen_values": bins.unseen_values(series)}
        col.bins = {
            "labels": bins.labels(),
            **col.bins,
            "reference_counts": ref_counts.astype(np.int64).tolist(),
            "current_counts": cur_counts.astype(np.int64).tolist(),
        }
        col.statistic, col.dof, col.p_value = chi2_homogeneity(ref_counts, cur_counts)
        col.psi = psi(ref_counts, cur_counts)
        col.jensen_shannon = jensen_shannon(ref_counts, cur_counts)

    def _decide(self, results: list[ColumnDrift]) -> None:
        tested = [c for c in results if c.p_value is not None]
        adjusted = benjamini_hochberg(np.array([c.p_value for c in tested]))
        for col, p_adj in zip(tested, adjusted, strict=True):
            col.p_value_adjusted = float(p_adj)
            significant = p_adj <= self.q
            if significant and col.psi >= self.psi_alert:
                col.status = "drift"
            elif significant and col.psi >= self.psi_warn:
                col.status = "warn"
            else:
                col.status = "ok"


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy and pandas scalars become Python ones)."""
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)
