"""Data drift: shared bins, tests, effect sizes, and two methods built on them.

``DefaultDrift`` is the rule flowship recommends (chi-square on shared bins, corrected
across columns, AND a PSI threshold); ``KSDrift`` reproduces the seed's per-column KS
test. Both are scikit-learn shaped: ``Method(**params).fit(reference).score(current)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowship.errors import UsageError
from flowship.monitoring.drift._base import DriftMethod
from flowship.monitoring.drift.ks import KSDrift
from flowship.monitoring.drift.result import ColumnDrift, DriftReport
from flowship.monitoring.drift.rule import DefaultDrift

if TYPE_CHECKING:
    import pandas as pd

METHODS: dict[str, type[DriftMethod]] = {"default": DefaultDrift, "ks": KSDrift}

__all__ = ["METHODS", "ColumnDrift", "DefaultDrift", "DriftReport", "KSDrift", "check_drift"]


def check_drift(
    reference: pd.DataFrame, current: pd.DataFrame, *, method: str = "default", **params: Any
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column with the named method."""
    if method not in METHODS:
        raise UsageError(f"Unknown drift method {method!r}.", f"Use one of: {', '.join(METHODS)}.")
    return METHODS[method](**params).fit_score(reference, current)
