"""The local engine: counts drift summaries from a source's Arrow record batches.

Memory holds one batch, a ``SAMPLE``-value sample per numeric column, and the value
counts of categorical columns (at most ``MAX_DISTINCT`` each), whatever the input size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowship.monitoring.drift.binning import CategoricalBins, NumericBins
from flowship.monitoring.drift.columns import MAX_CODES
from flowship.monitoring.drift.summaries import (
    MAX_DISTINCT,
    SAMPLE,
    Plan,
    Presence,
    Profile,
    Tally,
    ValueSet,
)

OnRows = Callable[[int], None]
"""Called with the rows of each batch read (progress)."""


class LocalEngine:
    """Counts on this machine, one Arrow batch at a time."""

    name = "local"

    def profile(
        self,
        source: Any,
        modes: Mapping[str, str],
        value_types: Mapping[str, str],
        *,
        seed: int,
        on_rows: OnRows | None = None,
    ) -> tuple[int, dict[str, Profile]]:
        """One pass: rows, and a ``Profile`` per column (``modes``: numeric/categorical)."""
        profiles = {name: Profile(name, value_types[name]) for name in modes}
        samplers = {name: Reservoir(SAMPLE) for name, mode in modes.items() if mode == "numeric"}
        rng = np.random.default_rng(seed)
        rows = 0
        for batch in _batches(source, list(modes)):
            rows += batch.num_rows
            keys = RowKeys(rng, batch.num_rows) if samplers else None
            for name, mode in modes.items():
                column = batch.column(name)
                if mode == "numeric":
                    _profile_numbers(profiles[name], column, samplers[name], keys)
                else:
                    _profile_categories(profiles[name], column)
            if on_rows:
                on_rows(batch.num_rows)
        if not modes:
            rows = source.count_rows()
        for name, sampler in samplers.items():
            profiles[name].sample = sampler.result()
        return rows, profiles

    def tally(
        self,
        source: Any,
        plans: Mapping[str, Plan],
        *,
        sample_seed: int | None = None,
        on_rows: OnRows | None = None,
    ) -> tuple[int, dict[str, Tally]]:
        """One pass counting each column by its plan; numeric plans also keep a sample
        when ``sample_seed`` is given."""
        tallies = {name: Tally() for name in plans}
        for name, plan in plans.items():
            if isinstance(plan, NumericBins | CategoricalBins):
                tallies[name].counts = np.zeros(plan.n_bins)
        samplers = {
            name: Reservoir(SAMPLE)
            for name, plan in plans.items()
            if sample_seed is not None and isinstance(plan, NumericBins)
        }
        rng = np.random.default_rng(sample_seed)
        rows = 0
        for batch in _batches(source, list(plans)):
            rows += batch.num_rows
            keys = RowKeys(rng, batch.num_rows) if samplers else None
            for name, plan in plans.items():
                _tally(tallies[name], plan, batch.column(name), samplers.get(name), keys)
            if on_rows:
                on_rows(batch.num_rows)
        if not plans:
            rows = source.count_rows()
        for name, sampler in samplers.items():
            tallies[name].sample = sampler.result()
        return rows, tallies

    def values(self, source: Any, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Every value of ``columns`` as float64 (NaN for missing): exact KS only."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
        for batch in _batches(source, list(columns)):
            for name in columns:
                parts[name].append(as_float(batch.column(name)))
        return {
            name: np.concatenate(chunks) if chunks else np.empty(0)
            for name, chunks in parts.items()
        }


class RowKeys:
    """One uniform random key per row of a batch, shared by the reservoirs of every
    column: the keys of a stream do not depend on how it is cut into batches, and
    columns without missing values, which see the same threshold, share one pick."""

    def __init__(self, rng: np.random.Generator, rows: int) -> None:
        self.keys = rng.random(rows)
        self._below: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def below(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """The rows whose key is below ``tau``, and their keys."""
        if tau not in self._below:
            rows = np.flatnonzero(self.keys < tau)
            self._below[tau] = rows, self.keys[rows]
        return self._below[tau]


class Reservoir:
    """A uniform sample without replacement of at most ``k`` values from a stream.

    Bottom-k sampling: every value comes with its row's uniform random key
    (``RowKeys``) and the values with the ``k`` smallest keys are kept. After ``seen``
    values the k-th smallest key is close to ``k / seen``, so values whose key is above
    ``SLACK * k / seen`` are dropped as they arrive and the exact bottom k are picked
    once, at the end. The threshold depends on counts only, never on the keys, so what
    passes is a Bernoulli sample that holds the true bottom k unless 10% fewer keys
    than expected fall below it (about 30 standard deviations at k = 100,000). Until
    more than ``k`` values arrive it keeps them all, so a small column's "sample" is
    the column itself.
    """

    SLACK = 1.1

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.size = 0
        self.seen = 0
        self.tau = 2.0  # no key reaches it: keep everything until k values are seen

    def add(self, values: np.ndarray, keys: RowKeys, rows: np.ndarray | None = None) -> None:
        """``values`` came from the batch's ``rows`` (a mask; ``None``: every row)."""
        self.seen += values.size
        if self.seen > self.k:
            self.tau = min(self.tau, self.SLACK * self.k / self.seen)
        if rows is None and self.tau <= 1.0:
            picked, picked_keys = keys.below(self.tau)
            values, own_keys = values.take(picked), picked_keys
        else:
            own_keys = keys.keys if rows is None else keys.keys[rows]
            if self.tau <= 1.0:
                keep = own_keys < self.tau
                values, own_keys = values[keep], own_keys[keep]
        if values.size == 0:
            return
        self.vals.append(values)
        self.keys.append(own_keys)
        self.size += values.size
        if self.size >= 2 * self.k:
            self._prune()

    def result(self) -> np.ndarray:
        if not self.vals:
            return np.empty(0)
        keys, vals = np.concatenate(self.keys), np.concatenate(self.vals)
        if vals.size > self.k:
            vals = vals[np.argpartition(keys, self.k - 1)[: self.k]]
        return np.sort(vals)

    def _prune(self) -> None:
        keys, vals = np.concatenate(self.keys), np.concatenate(self.vals)
        keep = keys < self.tau
        self.keys, self.vals, self.size = [keys[keep]], [vals[keep]], int(keep.sum())


def as_float(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The column as float64 with NaN for missing values."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.type != pa.float64():
        column = pc.cast(column, pa.float64(), safe=False)
    values = _view(column, np.float64)
    if column.null_count:
        # From the validity bitmap: pyarrow's fill_null and scalars import pandas.
        bits = np.frombuffer(column.buffers()[0], np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[column.offset :][: len(column)]
        values = np.where(valid.astype(bool), values, np.nan)
    return values


def _view(array: pa.Array, dtype: type) -> np.ndarray:
    """A NumPy view of a primitive array without nulls (``to_numpy`` imports pandas)."""
    if len(array) == 0:
        return np.empty(0, dtype)
    width = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * width)


def present_values(column: pa.Array) -> pa.Array:
    """The non-missing values (NaN counts as missing, as pandas has it)."""
    present = pc.drop_null(column)
    if pa.types.is_floating(column.type):
        present = present.filter(pc.invert(pc.is_nan(present)))
    return present


def value_counts(column: pa.Array) -> tuple[list[Any], np.ndarray, int]:
    """(values in order of first appearance, their counts, missing count)."""
    present = present_values(column)
    missing = len(column) - len(present)
    if pa.types.is_dictionary(present.type):
        # Count the codes, then name them: a code's first row is its value's first row.
        counted = pc.value_counts(present.indices)
        values = present.dictionary.take(counted.field("values")).to_pylist()
    else:
        counted = pc.value_counts(present)
        values = counted.field("values").to_pylist()
    return values, _view(counted.field("counts"), np.int64), missing


def _number_counts(x: np.ndarray) -> tuple[list[Any], np.ndarray, int]:
    """``value_counts`` for numbers as floats (NaN missing), in NumPy."""
    present = x[~np.isnan(x)]
    unique, first, counts = np.unique(present, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return unique[order].tolist(), counts[order], x.size - present.size


def _batches(source: Any, columns: list[str]):
    if not columns:
        return iter(())
    return source.batches(columns, encoded=True)


def _profile_numbers(profile: Profile, column: pa.Array, sampler: Reservoir, keys: RowKeys) -> None:
    x = as_float(column)
    profile.n += x.size
    finite, rows = x, None
    if not _all_finite(x):
        n_nan = int(np.count_nonzero(np.isnan(x)))
        profile.missing += n_nan
        rows = np.isfinite(x)
        finite = x[rows]
        if finite.size != x.size - n_nan:
            profile.pos_inf += int(np.count_nonzero(x == np.inf))
            profile.neg_inf += int(np.count_nonzero(x == -np.inf))
    if finite.size:
        profile.lo = min(profile.lo, float(finite.min()))
        profile.hi = max(profile.hi, float(finite.max()))
        # Chan et al.'s pairwise update: exact mean and variance batch by batch.
        mean_b = float(finite.mean())
        centred = finite - mean_b
        m2_b = float(np.einsum("i,i->", centred, centred))  # no BLAS threads
        total = profile.finite + finite.size
        delta = mean_b - profile.mean
        profile.mean += delta * finite.size / total
        profile.m2 += m2_b + delta * delta * profile.finite * finite.size / total
        profile.finite = total
        sampler.add(finite, keys, rows)
    if profile.counts is not None:
        # More than MAX_CODES finite values rule codes out: a glance at the first few
        # settles that for most columns without hashing the batch.
        head = finite[:256]
        if np.unique(head).size > MAX_CODES:
            profile.counts = None
            return
        # Counted in the column's own type, so integer codes stay integers. More than
        # MAX_CODES + 2 values (the infinities aside) rules codes out at once.
        if int(pc.count_distinct(column).as_py()) > MAX_CODES + 3:
            profile.counts = None
            return
        values, counts, _ = value_counts(column)
        for value, count in zip(values, counts.tolist(), strict=True):
            profile.counts[value] = profile.counts.get(value, 0) + count
        if sum(1 for v in profile.counts if np.isfinite(float(v))) > MAX_CODES:
            profile.counts = None


def _all_finite(x: np.ndarray) -> bool:
    """No NaN and no infinity, from two reductions instead of a mask."""
    return x.size == 0 or bool(np.isfinite(x.min() + x.max()))


def _profile_categories(profile: Profile, column: pa.Array) -> None:
    profile.n += len(column)
    values, counts, missing = value_counts(column)
    profile.missing += missing
    if profile.counts is None:
        return
    known = profile.counts
    for value, count in zip(values, counts.tolist(), strict=True):
        known[value] = known.get(value, 0) + count
    if len(known) > MAX_DISTINCT:
        profile.counts = None


def _tally(
    tally: Tally,
    plan: Plan,
    column: pa.Array,
    sampler: Reservoir | None,
    keys: RowKeys | None,
) -> None:
    tally.n += len(column)
    if isinstance(plan, NumericBins):
        x = as_float(column)
        assert tally.counts is not None
        counts = plan.count(x)
        tally.counts += counts
        tally.missing += int(counts[-1])
        if sampler is not None and keys is not None:
            rows = None if _all_finite(x) else np.isfinite(x)
            finite = x if rows is None else x[rows]
            tally.finite += finite.size
            sampler.add(finite, keys, rows)
        return
    if isinstance(plan, Presence):
        tally.missing += len(column) - len(present_values(column))
        return
    if isinstance(plan, ValueSet) and plan.numeric:
        values, counts, missing = _number_counts(as_float(column))
    else:
        values, counts, missing = value_counts(column)
    tally.missing += missing
    if isinstance(plan, CategoricalBins):
        assert tally.counts is not None
        tally.counts[-1] += missing
        unseen = plan.add(tally.counts, values, counts.tolist())
        for value in unseen:
            if len(tally.unseen) >= 10:
                break
            if value not in tally.unseen:
                tally.unseen.append(value)
        return
    reference = set(plan.reference)
    tally.present += len(column) - missing
    for value, count in zip(values, counts.tolist(), strict=True):
        if value not in reference:
            tally.new += count
            if len(tally.new_values) < 10 and value not in tally.new_values:
                tally.new_values.append(value)
