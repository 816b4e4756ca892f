"""A deterministic churn data set with the seed's columns.

The relationships follow the usual shape of customer churn: customers who have not
bought for a long time (``recency_days``) churn more; long tenure, frequent purchases
and high spend protect; the very young churn a little more. The same ``seed`` always
gives the same rows, so the quickstart's numbers are reproducible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ("age", "tenure_months", "recency_days", "frequency", "monetary_total")
TARGET = "churned"
ID = "customer_id"


def churn_frame(n: int = 5000, *, seed: int = 42, first_id: int = 100_000) -> pd.DataFrame:
    """``n`` customers: ``customer_id`` (int64), the five features and ``churned`` (0/1)."""
    import numpy as np
    import pandas as pd

    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    tenure = rng.gamma(2.0, 14.0, n).clip(1, 120).round().astype(np.int64)
    recency = rng.exponential(35.0, n).clip(0, 365).round().astype(np.int64)
    # Frequent buyers tend to have been customers longer.
    frequency = rng.poisson(2.0 + tenure / 8.0).astype(np.int64)
    monetary = (frequency * rng.lognormal(3.6, 0.5, n)).round(2)

    logit = (
        -0.6
        + 0.035 * recency
        - 0.035 * tenure
        - 0.12 * frequency
        - 0.0015 * monetary
        + 0.6 * (age < 25)
        + rng.normal(0.0, 0.4, n)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            ID: np.arange(first_id, first_id + n, dtype=np.int64),
            "age": age.astype(np.int64),
            "tenure_months": tenure,
            "recency_days": recency,
            "frequency": frequency,
            "monetary_total": monetary.astype(np.float64),
            TARGET: churned,
        }
    )
