"""Shared bins for a reference and a current sample, counted without per-row Python.

Numbers get bins cut at reference quantiles; values below the reference minimum, above
its maximum, and missing values get bins of their own, so a shift out of the reference
range or a jump in missing values shows up as mass where the reference had none.
Categories get one bin each (the most frequent ``max_categories`` of the reference, the
rest pooled as ``(other)``), plus ``(unseen)`` for categories the reference never had and
``(missing)``.

Numbers are counted with one vectorised comparison per edge and batch; the edges come
from a sorted uniform sample of the reference (``summaries.SAMPLE`` values, all of them
for smaller columns) plus its exact range. Sampled edges need not sit at
exact quantiles: both sides are counted in the same bins.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OTHER, UNSEEN, MISSING = "(other)", "(unseen)", "(missing)"


@dataclass
class NumericBins:
    """Reference-quantile bins, laid out ``[below, interior..., above, missing]``."""

    edges: np.ndarray

    @classmethod
    def fit(cls, sample: np.ndarray, lo: float, hi: float, *, bins: int) -> NumericBins:
        """``sample`` is sorted; ``lo`` and ``hi`` are the exact finite range."""
        positions = np.linspace(0, sample.size - 1, bins + 1).round().astype(np.intp)
        raw = sample[positions].astype(np.float64)
        raw[0], raw[-1] = lo, hi
        return cls(np.unique(np.clip(raw, lo, hi)))

    @property
    def n_bins(self) -> int:
        return self.edges.size + 2

    def count(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin. Bin ``i`` holds ``edges[i-1] <= x < edges[i]``, except that the
        last interior bin also holds the maximum itself; comparisons leave NaN out of
        every bin but the missing one. One comparison per edge costs a fifth of a
        ``np.searchsorted`` over a few edges."""
        edges = self.edges
        m = edges.size
        present = values.size - int(np.count_nonzero(np.isnan(values)))
        above = int(np.count_nonzero(values > edges[-1]))
        at_least = [int(np.count_nonzero(values >= edge)) for edge in edges[:-1]]
        bounds = [present, *at_least, above]
        counts = np.empty(m + 2)
        counts[:m] = np.subtract(bounds[:-1], bounds[1:])
        counts[m] = above
        counts[m + 1] = values.size - present
        return counts

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

    categories: list[Any]
    pooled: set[Any] = field(repr=False, default_factory=set)

    def __post_init__(self) -> None:
        self.index = {value: i for i, value in enumerate(self.categories)}

    @classmethod
    def fit(cls, ordered: Iterable[tuple[Any, int]], *, max_categories: int) -> CategoricalBins:
        """``ordered``: (value, count) pairs, most frequent first."""
        values = [value for value, _ in ordered]
        kept = values[:max_categories]
        if kept and all(isinstance(v, int | float) for v in kept):  # bools too, as pandas
            kept = sorted(kept)  # codes read best in their own order
        return cls(kept, set(values[max_categories:]))

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 3

    def add(self, counts: np.ndarray, values: list[Any], numbers: list[int]) -> list[Any]:
        """Add one batch's value counts into ``counts``; returns the unseen values."""
        unseen = []
        k = len(self.categories)
        for value, number in zip(values, numbers, strict=True):
            i = self.index.get(value)
            if i is not None:
                counts[i] += number
            elif value in self.pooled:
                counts[k] += number
            else:
                counts[k + 1] += number
                unseen.append(value)
        return unseen

    def labels(self) -> list[str]:
        return [str(c) for c in self.categories] + [OTHER, UNSEEN, MISSING]


def _fmt(x: float) -> str:
    return f"{x:.4g}"
