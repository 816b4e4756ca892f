"""Shared bins for a reference and a current sample, counted without per-row Python.

Numbers get bins cut at reference quantiles; values below the reference minimum, above
its maximum, and missing values get bins of their own, so a shift out of the reference
range or a jump in missing values shows up as mass where the reference had none.
Categories get one bin each (the most frequent ``max_categories`` of the reference, the
rest pooled as ``(other)``), plus ``(unseen)`` for categories the reference never had and
``(missing)``.

Numbers are counted with one ``np.searchsorted`` and one ``np.bincount`` per column; the
edges come from a sorted, fixed-seed sample of the reference (``SAMPLE`` values), which
the Wasserstein distance reuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Quantile edges come from a fixed-seed sample of this many values: bins need not sit at
# exact quantiles (both sides are counted in the same bins), and sorting 1M values per
# column would cost more than everything else together.
SAMPLE = 100_000
OTHER, UNSEEN, MISSING = "(other)", "(unseen)", "(missing)"


def as_float(series: pd.Series) -> np.ndarray:
    """The column as float64 with NaN for missing (nullable ints, pandas NA included)."""
    return series.to_numpy(dtype="float64", na_value=np.nan)


def sorted_sample(values: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """The finite values, sorted; at most ``SAMPLE`` of them, drawn with a fixed seed."""
    finite = values[np.isfinite(values)]
    if finite.size > SAMPLE:
        finite = finite[np.random.default_rng(seed).integers(0, finite.size, SAMPLE)]
    return np.sort(finite)


@dataclass
class NumericBins:
    """Reference-quantile bins, laid out ``[below, interior..., above, missing]``."""

    edges: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, sample: np.ndarray, *, bins: int) -> NumericBins:
        """``sample`` is ``sorted_sample(values)``; the outer edges are the exact range."""
        finite = np.isfinite(values)
        lo, hi = float(values[finite].min()), float(values[finite].max())
        positions = np.linspace(0, sample.size - 1, bins + 1).round().astype(np.intp)
        raw = sample[positions]
        raw[0], raw[-1] = lo, hi
        return cls(np.unique(np.clip(raw, lo, hi)))

    @property
    def n_bins(self) -> int:
        return self.edges.size + 2

    def count(self, values: np.ndarray) -> np.ndarray:
        edges = self.edges
        m = edges.size
        # side="right" on all but the last edge puts the maximum itself in the last
        # interior bin; values above it and NaN are then moved to bins of their own.
        idx = np.searchsorted(edges[:-1], values, side="right")
        idx[values > edges[-1]] = m
        idx[np.isnan(values)] = m + 1
        return np.bincount(idx, minlength=m + 2).astype(np.float64)

    def labels(self) -> list[str]:
        e = self.edges
        inner = [
            f"[{_fmt(e[i])}, {_fmt(e[i + 1])}{']' if i == e.size - 2 else ')'}"
            for i in range(e.size - 1)
        ]
        return [f"< {_fmt(e[0])}", *inner, f"> {_fmt(e[-1])}", MISSING]


@dataclass
class CategoricalBins:
    """One bin per reference category (top ``max_categories``), then other/unseen/missing."""

    categories: pd.Index
    pooled: pd.Index = field(repr=False)

    @classmethod
    def fit(cls, series: pd.Series, *, max_categories: int) -> CategoricalBins:
        counts = series.value_counts(dropna=True, sort=True)
        kept, pooled = counts.index[:max_categories], counts.index[max_categories:]
        if pd.api.types.is_numeric_dtype(kept.dtype):
            kept = kept.sort_values()  # codes read best in their own order
        return cls(kept, pooled)

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 3

    def count(self, series: pd.Series) -> np.ndarray:
        counts = series.value_counts(dropna=True, sort=False)
        known = counts.reindex(self.categories, fill_value=0).to_numpy(dtype=np.float64)
        other = float(counts.reindex(self.pooled, fill_value=0).sum()) if len(self.pooled) else 0.0
        unseen = float(counts.sum()) - float(known.sum()) - other
        missing = float(series.isna().sum())
        return np.concatenate([known, [other, unseen, missing]])

    def unseen_values(self, series: pd.Series, limit: int = 10) -> list[str]:
        seen = self.categories.append(self.pooled)
        values = series.dropna().unique()
        return [str(v) for v in values[~pd.Index(values).isin(seen)][:limit]]

    def labels(self) -> list[str]:
        return [str(c) for c in self.categories] + [OTHER, UNSEEN, MISSING]


def _fmt(x: float) -> str:
    return f"{x:.4g}"
