"""Id bookkeeping with memory bounded by the number of ids, never by the rows.

``IdSet`` holds ids as 64-bit keys in a few sorted numpy arrays (merged log-structured,
so adding a batch costs O(batch · log n) amortised and a membership test is a handful of
binary searches). Integer ids are their own keys; other ids are hashed to 64 bits
(pandas' SipHash-based ``hash_array``): with 10 million distinct ids the chance of any
collision is about 3 in a million, documented in docs/batch.md.

It serves two purposes in a run: the ids already scored for this (model version, date)
in the output, loaded once at the start (incremental mode), and the ids seen so far in
this run, so a duplicate id in the input is rejected instead of scored twice.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def id_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit keys for non-null ids: integers as themselves, anything else hashed."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_integer(ids.type):
        as_int = ids if pa.types.is_int64(ids.type) else ids.cast(pa.int64())
        return as_int.to_numpy(zero_copy_only=False)
    from pandas.util import hash_array

    as_text = ids if pa.types.is_string(ids.type) else pc.cast(ids, pa.string())
    return hash_array(as_text.to_numpy(zero_copy_only=False), categorize=False).view(np.int64)


class IdSet:
    """A set of 64-bit keys: ``contains`` for a whole batch, ``add`` for new keys."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # each sorted and unique, sizes decreasing
        # Runs that arrived in ascending order, each above everything before it: kept
        # as they came until a lookup needs to search them. Ids usually arrive sorted,
        # and merging those runs as they come cost a third of a second per 10 million.
        self._tail: list[np.ndarray] = []
        self._max: int | None = None  # the largest key held

    def __len__(self) -> int:
        return sum(run.size for run in self._runs) + sum(run.size for run in self._tail)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(keys.size, dtype=bool)
        if self._max is None or keys.size == 0 or keys.min() > self._max:
            return found  # ids arriving in ascending order: no search needed
        if self._tail:  # sorted end to end already: one run, no sort
            tail = self._tail[0] if len(self._tail) == 1 else np.concatenate(self._tail)
            self._tail = []
            self._push(tail)
        for run in self._runs:
            at = np.searchsorted(run, keys)
            at[at == run.size] = 0
            found |= run[at] == keys
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys (duplicates and keys already present are fine)."""
        fresh = _sorted_unique(keys)
        if fresh.size == 0:
            return
        if self._max is None or fresh[0] > self._max:
            self._tail.append(fresh)
        else:
            fresh = fresh[~self.contains(fresh)]
            if fresh.size == 0:
                return
            self._push(fresh)
        self._max = int(fresh[-1]) if self._max is None else max(self._max, int(fresh[-1]))

    def _push(self, run: np.ndarray) -> None:
        self._runs.append(run)
        # Merge while the newest run is at least half the size of the one before it:
        # log2(n) runs at most, and each key is re-sorted O(log n) times in total.
        while len(self._runs) > 1 and self._runs[-1].size * 2 >= self._runs[-2].size:
            last = self._runs.pop()
            merged = np.concatenate((self._runs[-1], last))
            if last[0] <= self._runs[-1][-1]:  # overlapping ranges: sort; else already sorted
                merged = _sorted_unique(merged, merging=True)
            self._runs[-1] = merged


def _sorted_unique(keys: np.ndarray, *, merging: bool = False) -> np.ndarray:
    # np.unique is several times slower here (it hashes); a sort and a shift are enough.
    # Two concatenated sorted runs sort ten times faster with the stable (radix/tim)
    # sort; sorting in place an array we own keeps the peak at about twice the ids.
    if not merging and _ascending(keys):  # the common case: sorted input, one pass
        return keys.copy()
    ordered = keys if merging else keys.copy()
    ordered.sort(kind="stable" if merging else "quicksort")
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _ascending(keys: np.ndarray) -> bool:
    """Strictly increasing (so sorted and unique)."""
    return keys.size < 2 or bool((keys[1:] > keys[:-1]).all())


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key within one batch."""
    if _ascending(keys):
        return np.ones(keys.size, dtype=bool)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(keys.size, dtype=bool)
    if keys.size > 1:
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    mask = np.empty(keys.size, dtype=bool)
    mask[order] = first
    return mask
