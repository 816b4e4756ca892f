from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowship.batch.incremental import IdSet, first_occurrences, id_keys


def test_idset_matches_a_python_set():
    rng = np.random.default_rng(3)
    ids, reference = IdSet(), set()
    for _ in range(40):
        batch = rng.integers(-(2**62), 2**62, rng.integers(1, 3000))
        batch[::7] = rng.integers(0, 50, len(batch[::7]))  # many repeats
        expected = np.array([k in reference for k in batch.tolist()])
        assert (ids.contains(batch) == expected).all()
        ids.add(batch)
        reference.update(batch.tolist())
    assert len(ids) == len(reference)
    assert len(ids._runs) <= 12  # log-structured: a few sorted runs, not one per batch


def test_first_occurrences_and_keys():
    keys = id_keys(pa.array(["b", "a", "b", "c", "a"]))
    assert first_occurrences(keys).tolist() == [True, True, False, True, False]
    assert id_keys(pa.array([5, 6], pa.int32())).tolist() == [5, 6]
    assert id_keys(pa.chunked_array([["x"], ["x"]])).tolist()[0] == id_keys(pa.array(["x"]))[0]


def test_ascending_ids_take_the_fast_path_and_stay_exact():
    ids = IdSet()
    for start in range(0, 50_000, 5_000):  # ascending batches: no sort, no search
        batch = np.arange(start, start + 5_000, dtype=np.int64)
        assert not ids.contains(batch).any()
        assert first_occurrences(batch).all()
        ids.add(batch)
    assert len(ids) == 50_000 and len(ids._runs) <= 6
    late = np.array([49_999, 50_000, 3, 3, -1], dtype=np.int64)  # back in range
    assert ids.contains(late).tolist() == [True, False, True, True, False]
    assert first_occurrences(late).tolist() == [True, True, True, False, True]
    ids.add(late)
    assert len(ids) == 50_002
    assert ids.contains(np.array([50_000, -1, 25_000])).all()


def test_ascending_runs_mixed_with_random_batches_match_a_python_set():
    """Ascending batches wait unmerged until a lookup must search them; interleaving them
    with out-of-order batches must not lose or invent a key."""
    rng = np.random.default_rng(11)
    ids, reference, top = IdSet(), set(), 0
    for step in range(60):
        if step % 3:  # ascending, above everything so far
            batch = top + np.cumsum(rng.integers(1, 4, rng.integers(1, 2000)))
        else:
            batch = rng.integers(0, top + 10, rng.integers(1, 500))
        top = max(top, int(batch.max()))
        expected = np.array([k in reference for k in batch.tolist()])
        assert (ids.contains(batch) == expected).all()
        ids.add(batch)
        reference.update(batch.tolist())
        assert len(ids) == len(reference)
