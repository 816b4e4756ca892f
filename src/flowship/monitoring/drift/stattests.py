"""Significance tests on shared bins, and the Benjamini-Hochberg correction."""

from __future__ import annotations

import math

import numpy as np


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
    return statistic, dof, chi2_sf(statistic, dof)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square with ``dof`` (a whole number) degrees of freedom.

    The closed forms for whole degrees of freedom (Abramowitz & Stegun 26.4.4-5): a
    finite sum of Poisson terms, plus an ``erfc`` for odd ``dof``. Every term is
    positive, so nothing cancels; they are summed in log space so that neither a large
    statistic nor many bins overflows. Agrees with scipy's ``chdtrc`` to about 1e-13
    (tested), without importing scipy (a third of a second of every drift check).
    """
    if x <= 0:
        return 1.0
    half = x / 2
    offset = 0.5 if dof % 2 else 0.0
    log_half = math.log(half)
    logs = [(i + offset) * log_half - math.lgamma(i + offset + 1) - half for i in range(dof // 2)]
    tail = math.erfc(math.sqrt(half)) if offset else 0.0
    if not logs:
        return tail
    top = max(logs)
    return tail + math.exp(top) * math.fsum(math.exp(v - top) for v in logs)


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
