"""The A/B statistics against independent computations: DeLong's AUC and variance,
the always-valid interval and p-value agreeing, the sample-ratio check."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from flowship.monitoring.experiments import stats


def test_auc_matches_scikit_learn_and_delong_variance_matches_the_bootstrap():
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.3).astype(float)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 2)  # ties on purpose (midranks)
    est = stats.auc_estimate(scores, labels)
    assert est.value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    boots = []
    for _ in range(300):
        i = rng.integers(0, len(labels), len(labels))
        boots.append(roc_auc_score(labels[i], scores[i]))
    assert est.se == pytest.approx(np.std(boots), rel=0.15)


def test_auc_needs_both_classes():
    assert stats.auc_estimate(np.array([0.1, 0.2, 0.3]), np.array([1.0, 1.0, 1.0])) is None


def test_mean_estimate_is_the_sample_mean_and_its_standard_error():
    x = np.random.default_rng(1).normal(3, 2, 500)
    mean, se = stats.mean_estimate(len(x), x.sum(), (x**2).sum())
    assert mean == pytest.approx(x.mean()) and se == pytest.approx(x.std(ddof=1) / np.sqrt(500))


@pytest.mark.parametrize("diff", [0.001, 0.01, 0.03, -0.05])
def test_the_interval_excludes_zero_exactly_when_p_is_below_alpha(diff):
    a = stats.Estimate(0.5 + diff, 0.01, 1000)
    b = stats.Estimate(0.5, 0.01, 1000)
    c = stats.compare(a, b, tau=0.02, alpha=0.05)
    assert c.significant == (c.p_value <= 0.05)
    assert c.low < c.diff < c.high


def test_the_always_valid_interval_is_wider_than_the_fixed_one():
    half = stats.half_width(0.01**2, 0.02, 0.05)
    assert half > 1.96 * 0.01


def test_units_needed_is_what_makes_the_interval_decide():
    a, b = stats.Estimate(0.52, 0.02, 2000), stats.Estimate(0.50, 0.02, 2000)
    c = stats.compare(a, b, tau=0.02, alpha=0.05)
    assert not c.significant
    more = stats.units_needed(c, 4000)
    assert more is not None and more > 0
    scale = 4000 / (4000 + more)  # the variance shrinks with the units
    later = stats.compare(
        stats.Estimate(0.52, 0.02 * np.sqrt(scale), 0),
        stats.Estimate(0.50, 0.02 * np.sqrt(scale), 0),
        tau=0.02,
        alpha=0.05,
    )
    assert later.significant


def test_sample_ratio_flags_a_broken_split_and_accepts_a_good_one():
    good = stats.sample_ratio(
        {"champion": 9010, "challenger": 990}, {"champion": 90, "challenger": 10}
    )
    assert not good.mismatch and good.p_value > 0.01
    bad = stats.sample_ratio(
        {"champion": 8700, "challenger": 1300}, {"champion": 90, "challenger": 10}
    )
    assert bad.mismatch
    stray = stats.sample_ratio({"champion": 10, "other": 5}, {"champion": 100})
    assert stray.mismatch
    assert stats.sample_ratio({"a": 1, "b": 2}, None).p_value is None


def test_units_needed_is_zero_when_the_interval_is_already_narrow():
    a, b = stats.Estimate(0.3001, 0.0005, 10**6), stats.Estimate(0.3, 0.0005, 10**6)
    c = stats.compare(a, b, tau=0.015, alpha=0.05)
    assert not c.significant and stats.units_needed(c, 2 * 10**6) == 0
