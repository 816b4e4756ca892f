"""``--method ks``: the seed's check, exact when the columns fit in memory.

Per numerical column, scipy's two-sample Kolmogorov-Smirnov test on the raw columns
(``ks_2samp(baseline[col], current[col])``, as the seed calls it) and drift when
p < ``alpha``, with no correction across columns and no effect size. On large samples
it flags differences too small to matter; the default rule exists for that reason.
Non-numerical columns are skipped (the seed's call would fail on them).

Exact needs every value of a column from both sides in memory at once (8 bytes a value,
about five times that while scipy sorts). Up to ``KS_EXACT_VALUES`` values a column it
reads them (as many columns per pass as fit) and calls scipy; beyond, ``mode="auto"``
switches to a binned approximation with a proven error bound, and ``mode="exact"``
refuses the input:

- Edges are 2,000 quantiles of each side's sample (a uniform sample of 100,000 values)
  plus both exact ranges; every row of both sides is counted into those bins.
- The two empirical CDFs are then known exactly at every edge, so
  ``D_lo = max |F_ref(e) - F_cur(e)|`` over the edges is attained, and inside a bin
  neither CDF can move by more than the bin's own mass, so the true statistic is at
  most ``D_hi = max over bins of max(|F_ref(right) - F_cur(left)|, |F_ref(left) -
  F_cur(right)|)``. The report gives the midpoint as the statistic, the half-width as
  its error, and the p-values of both bounds (asymptotic Kolmogorov distribution, which
  is what scipy itself uses above 10,000 rows a side).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from flowship.errors import InvalidInput
from flowship.monitoring.drift._base import DriftMethod
from flowship.monitoring.drift.binning import NumericBins
from flowship.monitoring.drift.columns import Selection, role_of
from flowship.monitoring.drift.result import ColumnDrift
from flowship.monitoring.drift.summaries import Profile

KS_EXACT_VALUES = 20_000_000
"""Values of one column (both sides together) up to which KS is exact: 160 MB."""
APPROX_QUANTILES = 2_000


class KSDrift(DriftMethod):
    name = "ks"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        mode: Literal["auto", "exact", "approx"] = "auto",
        exact_values: int | None = None,
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
        self.alpha = alpha
        self.mode = mode
        self.exact_values = exact_values

    @property
    def _limit(self) -> int:
        return KS_EXACT_VALUES if self.exact_values is None else self.exact_values

    def thresholds(self) -> dict[str, Any]:
        return {**super().thresholds(), "alpha": self.alpha}

    def _fit(self, reference: Any, selection: Selection) -> int:
        names = []
        for name in selection.names:
            if selection.reference_types[name] in ("number", "bool"):
                names.append(name)
            else:
                self.skipped_.append({"name": name, "reason": "ks compares numbers only"})
        types = {n: selection.reference_types[n] for n in names}
        rows, profiles = self.engine_.profile(
            reference, dict.fromkeys(names, "numeric"), types, seed=0, on_rows=self.on_rows
        )
        self.reference_stats_: dict[str, Profile] = {n: profiles[n] for n in names}
        return rows

    def _reference_has_values(self, name: str) -> bool:
        ref = self.reference_stats_[name]
        return ref.missing < ref.n

    def _score(self, current: Any, selection: Selection) -> tuple[int, list[ColumnDrift]]:
        names = list(self.reference_stats_)
        types = {n: selection.current_types[n] for n in names}
        n_current, profiles = self.engine_.profile(
            current, dict.fromkeys(names, "numeric"), types, seed=1, on_rows=self.on_rows
        )
        too_few = self._too_few_rows(n_current)
        results: dict[str, ColumnDrift] = {}
        tested = []
        for name, ref in self.reference_stats_.items():
            cur = profiles[name]
            col = ColumnDrift(
                name=name,
                kind="numerical",
                role=role_of(name, self.prediction_columns),
                status="ok",
                test="ks",
                n_reference=ref.n,
                n_current=n_current,
                missing_rate_reference=ref.missing / ref.n if ref.n else None,
                missing_rate_current=cur.missing / n_current if n_current else None,
            )
            reason = too_few
            if reason is None and ref.missing == ref.n:
                reason = "all values missing in the baseline"
            if reason is None and cur.missing == cur.n:
                reason = "all values missing in the current data"
            if reason:
                col.status, col.reason, col.test = "insufficient_data", reason, "none"
            else:
                tested.append(name)
            results[name] = col
        rows = self.n_reference_ + n_current
        if self._exact_or_not(rows, tested, current):
            self._exact(results, tested, current, rows)
        else:
            self._approximate(results, tested, profiles, current)
        for name in tested:
            col = results[name]
            if col.p_value is not None and math.isnan(col.p_value):
                col.reason = "scipy returned NaN (missing values); the seed counts it as no drift"
            col.status = "drift" if col.p_value is not None and col.p_value < self.alpha else "ok"
        return n_current, [results[n] for n in names]

    def _exact_or_not(self, values: int, tested: list[str], current: Any) -> bool:
        fits = values <= self._limit
        if self.mode == "exact" and not fits and tested:
            raise InvalidInput(
                f"The exact KS test needs all {values:,} values of a column in memory "
                f"(baseline {self.reference_source_.label()} and current {current.label()}); "
                f"the limit is {self._limit:,}.",
                "Drop --ks-exact to use the binned approximation (its error bound is "
                "reported), or narrow the data with --where.",
            )
        return fits if self.mode == "auto" else self.mode == "exact"

    def _exact(
        self, results: dict[str, ColumnDrift], tested: list[str], current: Any, rows: int
    ) -> None:
        per_pass = max(1, self._limit // max(1, rows))  # columns read together
        for start in range(0, len(tested), per_pass):
            group = tested[start : start + per_pass]
            from scipy.stats import ks_2samp  # scipy.stats takes a while to import

            ref_values = self.engine_.values(self.reference_source_, group)
            cur_values = self.engine_.values(current, group)
            for name in group:
                statistic, p_value = ks_2samp(ref_values.pop(name), cur_values.pop(name))
                col = results[name]
                col.statistic, col.p_value = float(statistic), float(p_value)

    def _approximate(
        self,
        results: dict[str, ColumnDrift],
        tested: list[str],
        profiles: dict[str, Profile],
        current: Any,
    ) -> None:
        from scipy.stats import kstwo

        plans = {n: _fine_bins(self.reference_stats_[n], profiles[n]) for n in tested}
        _, ref_tallies = self.engine_.tally(self.reference_source_, plans, on_rows=self.on_rows)
        _, cur_tallies = self.engine_.tally(current, plans, on_rows=self.on_rows)
        for name in tested:
            col = results[name]
            ref_counts, cur_counts = ref_tallies[name].counts, cur_tallies[name].counts
            assert ref_counts is not None and cur_counts is not None
            if ref_counts[-1] or cur_counts[-1]:  # scipy's answer with missing values
                col.statistic, col.p_value = math.nan, math.nan
                continue
            low, high = ks_bounds(ref_counts[:-1], cur_counts[:-1])
            n = round(ref_counts.sum() * cur_counts.sum() / (ref_counts.sum() + cur_counts.sum()))
            col.statistic = (low + high) / 2
            col.p_value = float(kstwo.sf(col.statistic, n))
            col.approximation = {
                "method": "binned empirical CDFs",
                "bins": int(plans[name].n_bins),
                "statistic_bounds": [low, high],
                "statistic_error": (high - low) / 2,
                "p_value_bounds": [float(kstwo.sf(high, n)), float(kstwo.sf(low, n))],
            }
            col.reason = (
                f"binned approximation: KS statistic {col.statistic:.4g} ± "
                f"{(high - low) / 2:.2g}, p between {col.approximation['p_value_bounds'][0]:.3g}"
                f" and {col.approximation['p_value_bounds'][1]:.3g}"
            )


def _fine_bins(reference: Profile, current: Profile) -> NumericBins:
    parts = []
    for side in (reference, current):
        if side.sample is not None and side.sample.size:
            at = np.linspace(0, side.sample.size - 1, APPROX_QUANTILES + 1).round().astype(int)
            parts.append(side.sample[at])
        parts.append(np.array([side.lo, side.hi]))
    edges = np.unique(np.concatenate(parts))
    return NumericBins(edges[np.isfinite(edges)])


def ks_bounds(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Bounds on the KS statistic from two sides' counts in the same ordered bins."""
    a = np.concatenate([[0.0], np.cumsum(reference) / reference.sum()])
    b = np.concatenate([[0.0], np.cumsum(current) / current.sum()])
    low = float(np.max(np.abs(a - b)))
    high = float(max(np.max(np.abs(a[1:] - b[:-1])), np.max(np.abs(a[:-1] - b[1:]))))
    return low, max(low, high)
