"""The micro-batcher with a real Predictor: concurrent requests become one predict call,
each gets its own rows back in order, and one bad request never fails its neighbours."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from flowship.errors import SchemaMismatch
from flowship.serving.batching import MicroBatcher, merge_columns
from flowship.serving.errors import Overloaded
from flowship.serving.metrics import FLUSH_S, ServingMetrics
from tests._caches import reset_caches
from tests.serving.conftest import FEATURES


@pytest.fixture(scope="module")
def predictor(serving_store):
    from flowship.predict import Predictor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", serving_store.uri)
        mp.setenv("FLOWSHIP_HOME", str(serving_store.home))
        reset_caches()
        loaded = Predictor.load("models:/churn/1")
        reset_caches()
    return loaded


def columns(data, rows) -> dict:
    return {c: data[c].iloc[rows].tolist() for c in FEATURES}


def batches(metrics: ServingMetrics, predictor) -> int:
    metrics.tally.flush()  # what the loop's tally still holds (the loop has stopped)
    return metrics.batch_size.count("churn", "1", predictor.backend)


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_one_predict_call(predictor, serving_store):
    data, want = serving_store.data, serving_store.expected["1"]
    metrics = ServingMetrics()
    batcher = MicroBatcher(lambda: predictor, metrics=metrics)

    async def main():
        sizes = [1, 3, 1, 2, 5]
        starts = np.cumsum([0, *sizes[:-1]])
        jobs = [
            batcher.predict(columns(data, list(range(s, s + n))), n)
            for s, n in zip(starts, sizes, strict=True)
        ]
        return starts, sizes, await asyncio.gather(*jobs)

    batcher._cost_s = 0.0  # measured as fast: predict inline
    starts, sizes, results = run(main())
    for start, size, (rows, used, scored) in zip(starts, sizes, results, strict=True):
        assert used is predictor
        assert rows.tolist() == want[start : start + size].tolist()
        # The merged matrix's rows that were this request's (what the prediction log keeps)
        sent = data[predictor.matrix_columns].iloc[start : start + size].to_numpy(float)
        np.testing.assert_array_equal(scored, sent)
    assert batches(metrics, predictor) == 1  # twelve rows, one call
    batcher.close()


def test_one_row_requests_as_decoded_share_one_call_in_any_column_order(predictor, serving_store):
    """The decoder's shape (one tuple per column, one row each), columns in another
    order in every other request: one predict call, each request its own row."""
    data, want = serving_store.data, serving_store.expected["1"]
    metrics = ServingMetrics()
    batcher = MicroBatcher(lambda: predictor, metrics=metrics)
    batcher._cost_s = 0.0

    def row(i: int) -> dict:
        names = FEATURES if i % 2 else FEATURES[::-1]
        return {c: (data[c].iloc[i],) for c in names}

    async def main():
        return await asyncio.gather(*(batcher.predict(row(i), 1, sequences=True) for i in range(6)))

    results = run(main())
    assert [rows.tolist() for rows, _, _ in results] == [[want[i]] for i in range(6)]
    assert batches(metrics, predictor) == 1
    batcher.close()


def test_merge_columns_keeps_each_requests_rows_in_order():
    one = [{"a": (1,), "b": ("x",)}, {"b": ("y",), "a": (2,)}]
    assert merge_columns(one, sequences=True, one_row=True) == {"a": (1, 2), "b": ("x", "y")}
    many = [{"a": [1, 2], "b": [3, 4]}, {"a": [5], "b": [6]}]
    assert merge_columns(many, sequences=True) == {"a": [1, 2, 5], "b": [3, 4, 6]}
    arrays = [{"a": np.array([1.0])}, {"a": np.array([2.0, 3.0])}]
    assert merge_columns(arrays)["a"].tolist() == [1.0, 2.0, 3.0]
    assert merge_columns([{"a": (1,)}, {"a": (2,)}], sequences=True, one_row=True) == {"a": (1, 2)}
    # Other names, or a "one row" request whose columns hold more: not merged.
    assert merge_columns([{"a": [1]}, {"b": [2]}], sequences=True) is None
    assert merge_columns([{"a": [1]}, {"a": [1], "b": [2]}], sequences=True) is None
    assert merge_columns([{"a": (1,)}, {"a": (2, 3)}], sequences=True, one_row=True) is None
    assert merge_columns([{"a": 1}, {"a": 2}], sequences=True) is None  # not sequences


def test_a_bad_request_fails_alone(predictor, serving_store):
    data, want = serving_store.data, serving_store.expected["1"]
    batcher = MicroBatcher(lambda: predictor, metrics=ServingMetrics())
    bad = columns(data, [0])
    bad["age"] = ["old"]

    async def main():
        return await asyncio.gather(
            batcher.predict(columns(data, [4]), 1),
            batcher.predict(bad, 1),
            batcher.predict(columns(data, [5]), 1),
            return_exceptions=True,
        )

    first, error, last = run(main())
    assert first[0].tolist() == [want[4]] and last[0].tolist() == [want[5]]
    assert isinstance(error, SchemaMismatch) and "Column 'age'" in error.message
    batcher.close()


def test_tagged_requests_reach_on_scored_once_per_batch(predictor, serving_store):
    """The prediction log's hook: one call per answered batch, with each tagged request's
    rows and outcome, and the batch as one (columns, result, scored rows) only when the
    tagged requests are all of it and one predict call scored them."""
    data, want = serving_store.data, serving_store.expected["1"]
    calls = []
    batcher = MicroBatcher(
        lambda: predictor,
        metrics=ServingMetrics(),
        on_scored=lambda *args: calls.append(args),
    )
    batcher._cost_s = 0.0  # measured as fast: predict inline
    bad = columns(data, [0])
    bad["age"] = ["old"]

    async def main(jobs):
        return await asyncio.gather(*jobs, return_exceptions=True)

    run(main([batcher.predict(columns(data, [0, 1]), 2, tag="a"),
              batcher.predict(columns(data, [2]), 1, tag="b")]))  # fmt: skip
    [(used, tagged, together)] = calls
    assert used is predictor and [(tag, rows) for tag, rows, _, _ in tagged] == [("a", 2), ("b", 1)]
    merged, result, scored = together
    assert result.tolist() == want[:3].tolist() and merged["age"] == data["age"][:3].tolist()
    sent = data[predictor.matrix_columns].iloc[:3].to_numpy(float)
    np.testing.assert_array_equal(scored, sent)

    calls.clear()  # an untagged request: the tagged one alone, without the batch's arrays
    run(main([batcher.predict(columns(data, [3]), 1, tag="c"),
              batcher.predict(columns(data, [4]), 1)]))  # fmt: skip
    [(_, [(tag, rows, sent_columns, (result, _, _))], together)] = calls
    assert (tag, rows, result.tolist(), together) == ("c", 1, [want[3]], None)
    assert sent_columns["age"] == [data["age"][3]]

    calls.clear()  # a bad request fails alone, untold; its neighbours are scored one by one
    run(main([batcher.predict(columns(data, [5]), 1, tag="d"), batcher.predict(bad, 1, tag="x"),
              batcher.predict(columns(data, [6]), 1, tag="e")]))  # fmt: skip
    [(_, tagged, together)] = calls
    assert [(tag, outcome[0].tolist()) for tag, _, _, outcome in tagged] == [
        ("d", [want[5]]), ("e", [want[6]])
    ]  # fmt: skip
    assert together is None

    calls.clear()  # a request that timed out before its batch was scored is not told

    async def timed_out():
        waiting = asyncio.ensure_future(batcher.predict(columns(data, [7]), 1, tag="late"))
        await asyncio.sleep(0)  # queued; its flush comes at the end of this loop turn
        waiting.cancel()
        return await main([batcher.predict(columns(data, [8]), 1, tag="f")])

    run(timed_out())
    assert [[tag for tag, *_ in tagged] for _, tagged, _ in calls] == [["f"]]
    batcher.close()


def test_a_failing_on_scored_loses_no_answer_and_stalls_no_batch(predictor, serving_store, caplog):
    """Fault injection: the hook (the prediction log) raising is logged; every request
    is answered, the batches queued behind the failed one included."""
    data, want = serving_store.data, serving_store.expected["1"]

    def broken(*args):
        raise RuntimeError("the log is broken")

    batcher = MicroBatcher(
        lambda: predictor, metrics=ServingMetrics(), max_batch_size=2, on_scored=broken
    )
    batcher._cost_s = 0.0  # inline: all three batches in one flush

    async def main():
        jobs = [batcher.predict(columns(data, [i]), 1, tag=i) for i in range(6)]
        return await asyncio.wait_for(asyncio.gather(*jobs), 10)

    results = run(main())
    assert [rows.tolist() for rows, _, _ in results] == [[want[i]] for i in range(6)]
    assert caplog.text.count("on_scored failed") == 3
    batcher.close()


def test_max_batch_size_splits_whole_requests(predictor, serving_store):
    data = serving_store.data
    metrics = ServingMetrics()
    batcher = MicroBatcher(lambda: predictor, metrics=metrics, max_batch_size=4)
    batcher._cost_s = 0.0

    async def main():
        return await asyncio.gather(
            *(batcher.predict(columns(data, [i, i + 1, i + 2]), 3) for i in range(4))
        )

    results = run(main())
    assert [len(r[0]) for r in results] == [3, 3, 3, 3]
    assert batches(metrics, predictor) == 4  # 3 + 3 > 4: one request per call
    batcher.close()


def test_queue_bound_and_wait_timer(predictor, serving_store):
    data = serving_store.data
    metrics = ServingMetrics()
    batcher = MicroBatcher(lambda: predictor, metrics=metrics, max_queue=2, max_wait_s=0.05)

    async def main():
        first = asyncio.ensure_future(batcher.predict(columns(data, [0]), 1))
        second = asyncio.ensure_future(batcher.predict(columns(data, [1]), 1))
        await asyncio.sleep(0)  # both are waiting for the 50 ms timer
        with pytest.raises(Overloaded):
            await batcher.predict(columns(data, [2]), 1)
        return await asyncio.gather(first, second)

    results = run(main())
    assert len(results) == 2 and batches(metrics, predictor) == 1
    batcher.close()


def test_the_queue_depth_counts_the_requests_waiting_in_every_batcher(predictor, serving_store):
    """A deployment has a batcher per variant, all writing one gauge: it shows their sum
    (it used to show whichever batcher had reported last)."""
    data = serving_store.data
    metrics = ServingMetrics()
    champion, challenger = (
        MicroBatcher(lambda: predictor, metrics=metrics, max_wait_s=0.05) for _ in range(2)
    )

    async def main():
        waiting = [
            asyncio.ensure_future(batcher.predict(columns(data, [i]), 1))
            for i, batcher in enumerate([champion, champion, challenger])
        ]
        await asyncio.sleep(0.01)  # all three wait for their batcher's 50 ms timer
        during = metrics.queue_depth.value()
        await asyncio.gather(*waiting)
        await asyncio.sleep(FLUSH_S * 20)  # the tally writes the gauge FLUSH_S later
        return during, metrics.queue_depth.value()

    during, after = run(main())
    assert (during, after) == (3, 0)
    champion.close()
    challenger.close()


def test_a_full_batch_does_not_wait_for_the_timer(predictor, serving_store):
    data = serving_store.data
    batcher = MicroBatcher(
        lambda: predictor, metrics=ServingMetrics(), max_batch_size=2, max_wait_s=5.0
    )

    async def main():
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(batcher.predict(columns(data, [i]), 1) for i in range(2)))
        return loop.time() - started

    assert run(main()) < 1.0
    batcher.close()
