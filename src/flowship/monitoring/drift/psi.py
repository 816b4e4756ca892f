"""Population stability index: the effect size of the default drift rule."""

from __future__ import annotations

import numpy as np

# A bin empty on one side would make PSI infinite; like most implementations, count it
# as this share instead (small enough that a real move of mass still scores high).
EPSILON = 1e-4


def proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over shared bins: sum of (cur - ref) * ln(cur / ref) on bin proportions.

    By convention 0.1 means a moderate shift and 0.25 a large one.
    """
    p = np.maximum(proportions(reference), EPSILON)
    q = np.maximum(proportions(current), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))
