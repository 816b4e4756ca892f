"""The statistics of an A/B report: estimates per variant, an always-valid comparison,
and the sample-ratio check.

Every comparison is a **confidence sequence**: the normal-mixture sequential probability
ratio test (mSPRT) of Robbins (1970), in the form Johari, Koomen, Pekelis and Walsh
("Always Valid Inference", Operations Research 2022) give for two-sample tests, applied to
an asymptotically normal estimate as Waudby-Smith et al. ("Time-uniform central limit
theory and asymptotic confidence sequences", 2021) justify. With the effect's estimate
``d``, its variance ``V`` and a mixing scale ``tau`` (the size of effect one cares about):

    r = tau**2 / V
    Lambda = sqrt(1 / (1 + r)) * exp(r * d**2 / (2 * V * (1 + r)))
    interval = d +- sqrt(V * (1 + r) / r * (log(1 + r) + 2 * log(1 / alpha)))

``1 / Lambda`` is a p-value that stays valid at whatever moment the report is read, so
running it every day does not inflate the false-positive rate (``tests/monitoring/
test_ab_simulation.py`` shows it). scipy provides the normal and chi-square laws.

Functions take NumPy arrays as well as floats, so the simulation runs thousands of
experiments in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: SRM alarm level: a split this unlikely under the configured weights is broken.
#: (Common practice at large experimentation platforms: 0.001, not 0.05, because the
#: check runs on every report and must not cry wolf.)
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Estimate:
    """One variant's metric: value, standard error and the units it rests on."""

    value: float
    se: float
    n: int


def mean_estimate(n: Any, total: Any, total_sq: Any) -> tuple[Any, Any]:
    """Mean and its standard error from per-unit sufficient statistics (count, sum, sum
    of squares); the unit is the sticky key, so clustered requests are averaged first."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.asarray(total, dtype=float) / n
        var = (np.asarray(total_sq, dtype=float) - n * mean**2) / (n - 1)
        se = np.sqrt(np.maximum(var, 0.0) / n)
    return mean, se


def auc_estimate(scores: np.ndarray, labels: np.ndarray) -> Estimate | None:
    """AUC with DeLong's variance (Sun and Xu's fast form, midranks from scipy).
    None when one class is missing: AUC is undefined there."""
    from scipy.stats import rankdata

    positive = labels > 0.5
    m, k = int(positive.sum()), int((~positive).sum())
    if m < 2 or k < 2:
        return None
    pos, neg = scores[positive], scores[~positive]
    ranks = rankdata(np.concatenate([pos, neg]))
    in_pos, in_neg = rankdata(pos), rankdata(neg)
    v10 = (ranks[:m] - in_pos) / k  # share of negatives below each positive
    v01 = 1.0 - (ranks[m:] - in_neg) / m  # share of positives above each negative
    auc = float(v10.mean())
    var = float(v10.var(ddof=1) / m + v01.var(ddof=1) / k)
    return Estimate(auc, math.sqrt(max(var, 0.0)), m + k)


def default_tau(metric: str, champion_value: float) -> float:
    """The effect size the interval is tuned to when ``--effect`` is not given: two
    points of AUC, accuracy or log loss; 5% of the champion's value for a mean."""
    if metric == "mean":
        return max(0.05 * abs(champion_value), 1e-9)
    return 0.02


def half_width(variance: Any, tau: Any, alpha: float) -> Any:
    """Half-width of the always-valid interval for an estimate with ``variance``."""
    v = np.maximum(np.asarray(variance, dtype=float), 1e-300)
    r = np.asarray(tau, dtype=float) ** 2 / v
    return np.sqrt(v * (1 + r) / r * (np.log1p(r) + 2 * math.log(1 / alpha)))


def always_valid_p(diff: Any, variance: Any, tau: Any) -> Any:
    """``min(1, 1/Lambda)``: the mSPRT p-value for "no difference", valid at any look."""
    v = np.maximum(np.asarray(variance, dtype=float), 1e-300)
    r = np.asarray(tau, dtype=float) ** 2 / v
    log_lambda = -0.5 * np.log1p(r) + r * np.asarray(diff, dtype=float) ** 2 / (2 * v * (1 + r))
    return np.minimum(1.0, np.exp(-np.minimum(log_lambda, 700.0)))


@dataclass(frozen=True)
class Comparison:
    """Candidate minus champion, with its always-valid interval and p-value."""

    diff: float
    se: float
    low: float
    high: float
    p_value: float
    tau: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def compare(candidate: Estimate, champion: Estimate, *, tau: float, alpha: float) -> Comparison:
    diff = candidate.value - champion.value
    variance = candidate.se**2 + champion.se**2
    half = float(half_width(variance, tau, alpha))
    p = float(always_valid_p(diff, variance, tau))
    return Comparison(diff, math.sqrt(variance), diff - half, diff + half, p, tau, alpha)


def units_needed(comparison: Comparison, n_units: int) -> int | None:
    """About how many more matured units (at the current split) until the interval would
    exclude zero if the observed difference holds (a difference below a quarter of
    ``tau`` counts as that quarter: it may well be none at all); None if decided, 0 when
    the interval is already that narrow (any difference is too small to matter)."""
    if comparison.significant or n_units <= 0:
        return None
    target = max(abs(comparison.diff), comparison.tau / 4)
    variance = comparison.se**2
    if variance <= 0:
        return None
    if half_width(variance, comparison.tau, comparison.alpha) <= target:
        return 0
    lo, hi = 1.0, 2.0
    while half_width(variance / hi, comparison.tau, comparison.alpha) > target:
        lo, hi = hi, hi * 2
        if hi > 1e9:
            return None
    for _ in range(60):  # the half-width shrinks monotonically with more units
        mid = (lo + hi) / 2
        if half_width(variance / mid, comparison.tau, comparison.alpha) > target:
            lo = mid
        else:
            hi = mid
    return max(1, math.ceil(n_units * (hi - 1)))


@dataclass(frozen=True)
class SampleRatio:
    """Units per variant against the configured weights (chi-square goodness of fit)."""

    observed: dict[str, int]
    expected_share: dict[str, float]
    p_value: float | None

    @property
    def mismatch(self) -> bool:
        return self.p_value is not None and self.p_value < SRM_ALPHA

    def to_dict(self) -> dict[str, Any]:
        total = sum(self.observed.values()) or 1
        return {
            "observed": self.observed,
            "observed_share": {k: v / total for k, v in self.observed.items()},
            "expected_share": self.expected_share,
            "p_value": self.p_value,
            "alpha": SRM_ALPHA,
            "mismatch": self.mismatch,
        }


def sample_ratio(observed: dict[str, int], weights: dict[str, float] | None) -> SampleRatio:
    """None p-value without weights: the split cannot be checked, and the report says so."""
    if not weights:
        return SampleRatio(observed, {}, None)
    from scipy.stats import chisquare

    total_weight = sum(weights.values())
    shares = {k: w / total_weight for k, w in weights.items()}
    names = [k for k in shares if shares[k] > 0]
    counts = np.array([observed.get(k, 0) for k in names], dtype=float)
    # A variant the weights do not know about means the split is broken outright.
    stray = sum(v for k, v in observed.items() if k not in shares or shares[k] == 0)
    if stray:
        return SampleRatio(observed, shares, 0.0)
    if counts.sum() == 0 or len(names) < 2:
        return SampleRatio(observed, shares, None)
    expected = np.array([shares[k] for k in names]) * counts.sum()
    p = float(chisquare(counts, expected).pvalue)
    return SampleRatio(observed, shares, p)
