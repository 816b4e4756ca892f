"""What an engine counts, and what the verdict code reads: per-column summaries.

Drift is decided from counts, never from rows, so the same verdict code runs on what the
local engine (Arrow batches, NumPy) or the Spark engine (aggregations) counted:

1. ``Profile``: one pass over a side, before any bin is known: rows, missing values, and
   for numbers the range, mean and variance, a uniform sample of at most ``SAMPLE``
   finite values (all of them when there are fewer), and the value counts while there
   are at most ``MAX_CODES`` distinct values; for categories the value counts (at most
   ``MAX_DISTINCT`` values).
2. ``Plan`` -> ``Tally``: a pass that counts each column into bins fixed from the
   baseline's profile (numeric bins, categories, or a constant's value set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowship.monitoring.drift.binning import CategoricalBins, NumericBins

SAMPLE = 100_000
"""Sampled finite values per numeric column (bins' edges, Wasserstein, approximate KS)."""
MAX_DISTINCT = 100_000
"""Distinct categories kept per column; a column with more is an identifier, not a
category, and is skipped with that reason."""


@dataclass
class Profile:
    """One column of one side (see the module doc). ``value_type`` is ``number``,
    ``bool``, ``datetime``, ``text`` or ``null`` (a column with no type: all missing)."""

    name: str
    value_type: str
    n: int = 0
    missing: int = 0
    finite: int = 0
    lo: float = math.inf
    hi: float = -math.inf
    neg_inf: int = 0
    pos_inf: int = 0
    mean: float = 0.0
    m2: float = 0.0
    sample: np.ndarray | None = None
    """Sorted finite values: all of them when ``finite <= SAMPLE``, else a uniform sample."""
    counts: dict[Any, int] | None = field(default_factory=dict)
    """Non-missing values -> count, in order of first appearance; ``None`` when there
    are too many (numbers: more than ``MAX_CODES`` finite values; categories: more
    than ``MAX_DISTINCT``)."""

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.finite) if self.finite else math.nan

    @property
    def complete_sample(self) -> bool:
        return self.sample is not None and self.sample.size == self.finite


@dataclass
class ValueSet:
    """A constant baseline column: count the current values outside ``reference``."""

    reference: list[Any]
    numeric: bool


@dataclass
class Presence:
    """Count only rows and missing values (a column whose type differs by side)."""


Plan = NumericBins | CategoricalBins | ValueSet | Presence


@dataclass
class Tally:
    """One column of one side counted by a plan."""

    n: int = 0
    missing: int = 0
    counts: np.ndarray | None = None
    """Bin counts in the plan's layout (numeric and categorical plans)."""
    sample: np.ndarray | None = None
    """Sorted finite values (numeric plans, when asked for): as ``Profile.sample``."""
    finite: int = 0
    unseen: list[Any] = field(default_factory=list)
    """Categorical plans: up to 10 values the baseline never had, in order of appearance."""
    present: int = 0
    new: int = 0
    new_values: list[Any] = field(default_factory=list)
    """Value-set plans: non-missing values, those outside the set, up to 10 of them."""


def numeric_counts_from_profile(bins: NumericBins, profile: Profile) -> np.ndarray:
    """Bin counts of a side whose sample holds all its finite values, without reading
    it again: infinities go below/above, missing values to the missing bin."""
    assert profile.complete_sample and profile.sample is not None
    counts = bins.count(profile.sample)
    counts[0] += profile.neg_inf
    counts[-2] += profile.pos_inf
    counts[-1] += profile.missing
    return counts


def ordered_counts(counts: dict[Any, int]) -> list[tuple[Any, int]]:
    """Most frequent first; ties keep the order of first appearance (as pandas does)."""
    return sorted(counts.items(), key=lambda kv: -kv[1])
