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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowship.monitoring.drift._base import DriftMethod
from flowship.monitoring.drift.binning import CategoricalBins, NumericBins
from flowship.monitoring.drift.columns import Selection, role_of
from flowship.monitoring.drift.distances import (
    jensen_shannon,
    normalized_wasserstein,
    wasserstein_sorted,
)
from flowship.monitoring.drift.psi import psi
from flowship.monitoring.drift.result import ColumnDrift
from flowship.monitoring.drift.stattests import benjamini_hochberg, chi2_homogeneity
from flowship.monitoring.drift.summaries import (
    MAX_DISTINCT,
    Plan,
    Presence,
    Profile,
    Tally,
    ValueSet,
    numeric_counts_from_profile,
    ordered_counts,
)


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

    def plan(self) -> Plan:
        """How the current side of this column is counted."""
        if self.reason is not None:
            return Presence()
        if self.constant is not None:
            return ValueSet(self.constant, numeric=self.kind == "numerical")
        assert self.bins is not None
        return self.bins


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
        engine: Any = "local",
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            columns=columns,
            column_types=column_types,
            prediction_columns=prediction_columns,
            drift_share=drift_share,
            min_rows=min_rows,
            engine=engine,
            on_rows=on_rows,
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

    def _fit(self, reference: Any, selection: Selection) -> int:
        overrides = dict(self.column_types or {})
        modes = {
            name: "numeric"
            if overrides.get(name, "numerical" if t == "number" else "categorical") == "numerical"
            else "categorical"
            for name, t in selection.reference_types.items()
        }
        rows, profiles = self.engine_.profile(
            reference, modes, selection.reference_types, seed=0, on_rows=self.on_rows
        )
        refs = {}
        for name in selection.names:
            ref = self._fit_column(profiles[name], modes[name], overrides.get(name))
            if ref is None:
                self.skipped_.append(
                    {"name": name, "reason": f"more than {MAX_DISTINCT:,} distinct values"}
                )
                continue
            refs[name] = ref
        # Numbers whose sample is not the whole column are counted in a second pass.
        pending = {
            name: ref.bins
            for name, ref in refs.items()
            if isinstance(ref.bins, NumericBins) and ref.counts is None
        }
        if pending:
            _, tallies = self.engine_.tally(reference, pending, on_rows=self.on_rows)
            for name, tally in tallies.items():
                refs[name].counts = tally.counts
        self.reference_stats_ = refs
        return rows

    def _reference_has_values(self, name: str) -> bool:
        ref = self.reference_stats_[name]
        return ref.missing < ref.n

    def _fit_column(self, profile: Profile, mode: str, override: str | None) -> _Reference | None:
        kind = "numerical" if mode == "numeric" else "categorical"
        ref = _Reference(
            profile.name,
            kind,
            role_of(profile.name, self.prediction_columns),
            profile.n,
            profile.missing,
        )
        if profile.missing == profile.n:
            ref.reason = "all values missing in the baseline"
            return ref
        if mode == "numeric":
            if profile.finite == 0:
                ref.reason = "no finite values in the baseline"
                return ref
            if not override and profile.counts is not None:
                # Few distinct values: codes, not quantities.
                ref.kind = "categorical"
                return self._fit_categorical(ref, profile)
            assert profile.sample is not None
            bins = NumericBins.fit(profile.sample, profile.lo, profile.hi, bins=self.bins)
            if bins.edges.size == 1:
                ref.constant = [bins.edges[0].item()]
                return ref
            ref.bins, ref.sample, ref.std = bins, profile.sample, profile.std
            if profile.complete_sample:
                ref.counts = numeric_counts_from_profile(bins, profile)
            return ref
        if profile.counts is None:
            return None
        return self._fit_categorical(ref, profile)

    def _fit_categorical(self, ref: _Reference, profile: Profile) -> _Reference:
        assert profile.counts is not None
        ordered = ordered_counts(profile.counts)
        bins = CategoricalBins.fit(ordered, max_categories=self.max_categories)
        if len(bins.categories) == 1:
            ref.constant = [bins.categories[0]]
            return ref
        ref.bins = bins
        known = [profile.counts[c] for c in bins.categories]
        other = sum(profile.counts[c] for c in bins.pooled)
        ref.counts = np.array([*known, other, 0, profile.missing], dtype=np.float64)
        return ref

    def _score(self, current: Any, selection: Selection) -> tuple[int, list[ColumnDrift]]:
        plans = {name: ref.plan() for name, ref in self.reference_stats_.items()}
        n_current, tallies = self.engine_.tally(current, plans, sample_seed=1, on_rows=self.on_rows)
        too_few = self._too_few_rows(n_current)
        results = []
        for name, ref in self.reference_stats_.items():
            tally = tallies[name]
            col = ColumnDrift(
                name=name,
                kind=ref.kind,  # type: ignore[arg-type]
                role=ref.role,  # type: ignore[arg-type]
                status="ok",
                test="chi2",
                n_reference=ref.n,
                n_current=n_current,
                missing_rate_reference=ref.missing / ref.n if ref.n else None,
                missing_rate_current=tally.missing / n_current if n_current else None,
            )
            reason = too_few or ref.reason
            if reason is None and tally.missing == n_current:
                reason = "all values missing in the current data"
            if reason:
                col.status, col.reason, col.test = "insufficient_data", reason, "none"
            elif ref.constant is not None:
                self._value_set(col, ref, tally)
            else:
                self._compare(col, ref, tally)
            results.append(col)
        self._decide(results)
        return n_current, results

    def _value_set(self, col: ColumnDrift, ref: _Reference, tally: Tally) -> None:
        share = tally.new / tally.present
        col.test = "value_set"
        col.reason = "constant baseline: compared value sets instead of distributions"
        col.value_set = {
            "reference": [_plain(v) for v in ref.constant],
            "new_values": [_plain(v) for v in tally.new_values],
            "new_value_share": share,
        }
        col.status = "drift" if share > 0 else "ok"

    def _compare(self, col: ColumnDrift, ref: _Reference, tally: Tally) -> None:
        bins = ref.bins
        assert bins is not None and ref.counts is not None and tally.counts is not None
        ref_counts, cur_counts = ref.counts, tally.counts
        if isinstance(bins, NumericBins):
            assert ref.sample is not None and tally.sample is not None
            distance = wasserstein_sorted(ref.sample, tally.sample)
            col.wasserstein_normalized = normalized_wasserstein(distance, ref.std)
            col.bins = {"edges": bins.edges.tolist()}
        else:
            col.bins = {"unseen_values": [str(v) for v in tally.unseen]}
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
