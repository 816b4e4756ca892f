"""Significance tests on shared bins, and the Benjamini-Hochberg correction."""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc  # chi2's survival function, without scipy.stats


def chi2_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    """Pearson's chi-square test that two samples share one distribution over the bins.

    Returns ``(statistic, degrees_of_freedom, p_value)``. Bins empty on both sides carry
    no information and are dropped; with fewer than two bins left there is nothing to
    compare and the answer is ``(0, 0, 1)``.
    """
    keep = (reference + current) > 0
    ref, cur = reference[keep], current[keep]
    if ref.size < 2:
        return 0.0, 0, 1.0
    n_ref, n_cur = ref.sum(), cur.sum()
    total = ref + cur
    n = n_ref + n_cur
    exp_ref, exp_cur = total * (n_ref / n), total * (n_cur / n)
    statistic = float(
        np.sum((ref - exp_ref) ** 2 / exp_ref) + np.sum((cur - exp_cur) ** 2 / exp_cur)
    )
    dof = int(ref.size - 1)
    return statistic, dof, float(chdtrc(dof, statistic))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Adjusted p-values controlling the false discovery rate across tests
    (a test is significant at level q when its adjusted p-value is <= q)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    # Step-up: each adjusted value is the smallest ratio at its rank or above.
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted
