"""Seeded simulations of A/B experiments read every day: the evidence that the report's
test keeps its false-positive rate under peeking, and the power it has with a real
uplift. Used by the test suite (small runs) and ``benchmarks/ab.py`` (large runs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowship.monitoring.experiments.stats import (
    default_tau,
    half_width,
    mean_estimate,
)


@dataclass(frozen=True)
class PeekingResult:
    experiments: int
    days: int
    alpha: float
    sequential_rate: float
    """Share of experiments the report ever called significant, over all daily looks."""
    naive_rate: float
    """The same for a fixed-horizon z-test read every day (what peeking does to it)."""
    median_day: float | None
    """Median first day of a significant call, among experiments that had one."""


def daily_conversion(
    *,
    experiments: int,
    days: int,
    units_per_day: int,
    base_rate: float,
    uplift: float,
    share: float = 0.5,
    alpha: float = 0.05,
    seed: int = 0,
) -> PeekingResult:
    """Conversion experiments (metric ``mean`` of a 0/1 outcome), ``share`` of units on
    the candidate, which converts at ``base_rate + uplift``. Each day's matured units are
    added and the report's statistics are read again."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    n_cand = rng.binomial(units_per_day, share, size=(experiments, days))
    n_champ = units_per_day - n_cand
    conv_cand = rng.binomial(n_cand, base_rate + uplift)
    conv_champ = rng.binomial(n_champ, base_rate)
    nc, nh = n_cand.cumsum(axis=1), n_champ.cumsum(axis=1)
    sc, sh = conv_cand.cumsum(axis=1), conv_champ.cumsum(axis=1)
    # 0/1 outcomes: the sum of squares is the sum.
    mc, sec = mean_estimate(nc, sc, sc)
    mh, seh = mean_estimate(nh, sh, sh)
    diff, variance = mc - mh, sec**2 + seh**2
    tau = np.vectorize(lambda v: default_tau("mean", v))(mh)
    sequential = np.abs(diff) > half_width(variance, tau, alpha)
    naive = np.abs(diff) > norm.ppf(1 - alpha / 2) * np.sqrt(variance)
    hits = sequential.any(axis=1)
    first = sequential.argmax(axis=1)[hits] + 1
    return PeekingResult(
        experiments=experiments,
        days=days,
        alpha=alpha,
        sequential_rate=float(hits.mean()),
        naive_rate=float(naive.any(axis=1).mean()),
        median_day=float(np.median(first)) if hits.any() else None,
    )
