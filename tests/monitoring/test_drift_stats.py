"""The building blocks against scipy and by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, wasserstein_distance

from flowship.monitoring.drift.binning import CategoricalBins, NumericBins
from flowship.monitoring.drift.distances import jensen_shannon, wasserstein_sorted
from flowship.monitoring.drift.psi import psi
from flowship.monitoring.drift.stattests import benjamini_hochberg, chi2_homogeneity, chi2_sf


def test_chi2_matches_scipy_contingency():
    ref = np.array([120.0, 80, 50, 0, 9])
    cur = np.array([100.0, 90, 70, 0, 1])
    stat, dof, p = chi2_homogeneity(ref, cur)
    expected = chi2_contingency(
        np.vstack([ref[ref + cur > 0], cur[ref + cur > 0]]), correction=False
    )
    assert stat == pytest.approx(expected.statistic)
    assert dof == expected.dof == 3
    assert p == pytest.approx(expected.pvalue)


def test_chi2_with_one_bin_compares_nothing():
    assert chi2_homogeneity(np.array([5.0, 0]), np.array([7.0, 0])) == (0.0, 0, 1.0)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.0533, 0.0533, 0.20
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.05333333, 0.05333333, 0.2])
    assert benjamini_hochberg(np.array([])).size == 0


def test_psi_zero_for_equal_and_large_for_moved_mass():
    a = np.array([50.0, 30, 20, 0])
    assert psi(a, a * 3) == pytest.approx(0.0)
    assert psi(a, np.array([20.0, 30, 20, 30])) > 0.25


def test_jensen_shannon_matches_scipy():
    a, b = np.array([5.0, 3, 2, 0]), np.array([1.0, 3, 4, 2])
    assert jensen_shannon(a, b) == pytest.approx(jensenshannon(a, b, base=2))


@pytest.mark.parametrize("n_a,n_b", [(3000, 3000), (2000, 3500)])
def test_wasserstein_matches_scipy_below_the_sample_size(n_a, n_b):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=n_a), rng.normal(0.7, 2, size=n_b)
    ours = wasserstein_sorted(np.sort(a), np.sort(b))
    assert ours == pytest.approx(wasserstein_distance(a, b))


def test_numeric_bins_layout_puts_range_ends_inside_and_the_rest_in_their_own_bins():
    ref = np.arange(100, dtype=float)
    bins = NumericBins.fit(np.sort(ref), 0.0, 99.0, bins=4)
    assert bins.edges[0] == 0 and bins.edges[-1] == 99
    counts = bins.count(np.array([-1.0, 0.0, 99.0, 100.0, np.nan, np.inf, -np.inf]))
    # below: -1, -inf | first bin: 0 | last bin: 99 | above: 100, inf | missing: nan
    assert counts.tolist() == [2, 1, 0, 0, 1, 2, 1]
    assert counts.sum() == 7
    assert len(bins.labels()) == counts.size


def test_categorical_bins_other_unseen_missing():
    bins = CategoricalBins.fit([("a", 5), ("b", 3), ("c", 1)], max_categories=2)
    counts = np.zeros(bins.n_bins)
    unseen = bins.add(counts, ["a", "c", "z"], [1, 1, 2])
    assert bins.labels() == ["a", "b", "(other)", "(unseen)", "(missing)"]
    assert counts.tolist() == [1, 0, 1, 2, 0]
    assert unseen == ["z"]


def test_chi2_survival_matches_scipy_from_tiny_to_huge_statistics():
    from scipy.special import chdtrc

    rng = np.random.default_rng(0)
    for dof in [*range(1, 60), 101, 2001]:
        for x in [*rng.uniform(0, 3 * dof + 10, 20), 1e-9, 0.5, dof, 1000.0, 1e4]:
            theirs = float(chdtrc(dof, x))
            assert chi2_sf(float(x), dof) == pytest.approx(theirs, rel=1e-11, abs=1e-300)
    assert chi2_sf(0.0, 3) == 1.0


def test_the_default_drift_path_imports_neither_pandas_nor_scipy(tmp_path):
    import subprocess
    import sys

    table = pa.table(
        {
            "x": np.arange(300.0),
            "gaps": pa.array([1.5, None, 2.5] * 100),
            "c": pa.array(["a", "b", None] * 100),
        }
    )
    pq.write_table(table, tmp_path / "b.parquet")
    pq.write_table(table, tmp_path / "c.parquet")
    code = (
        "import sys; from flowship.monitoring.drift import check_drift; "
        f"check_drift({str(tmp_path / 'b.parquet')!r}, {str(tmp_path / 'c.parquet')!r}); "
        "print(sorted(m for m in ('pandas', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
