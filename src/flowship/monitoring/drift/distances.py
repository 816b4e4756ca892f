"""Distances reported next to the verdict: normalized Wasserstein and Jensen-Shannon."""

from __future__ import annotations

import numpy as np

from flowship.monitoring.drift.psi import proportions


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between binned distributions."""
    p, q = proportions(reference), proportions(current)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between two sorted samples of finite values.

    Equal sizes (the large-data path: both sides sampled to ``binning.SAMPLE``) is the
    mean gap between order statistics; otherwise the exact integral of |F_a - F_b|, the
    same number ``scipy.stats.wasserstein_distance`` gives.
    """
    if a.size == 0 or b.size == 0:
        return float("nan")
    if a.size == b.size:
        return float(np.mean(np.abs(a - b)))
    merged = np.sort(np.concatenate([a, b]))
    f_a = np.searchsorted(a, merged[:-1], side="right") / a.size
    f_b = np.searchsorted(b, merged[:-1], side="right") / b.size
    return float(np.sum(np.abs(f_a - f_b) * np.diff(merged)))


def normalized_wasserstein(distance: float, reference_std: float) -> float:
    """Wasserstein distance in units of the reference standard deviation."""
    return distance / reference_std if reference_std > 0 else float("nan")
