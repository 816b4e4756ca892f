"""The shadow queue on its own, in one event loop: copies merged column by column,
scored in batches of whole copies, each outcome back with its own request, and the
bounds. (The shadow model is a plain object with ``predict``, as the queue sees a
Predictor; real servers with real MLflow shadows are in test_shadow_and_log.py.)"""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import numpy as np

from flowship.serving.metrics import ServingMetrics
from flowship.serving.shadow import ShadowCopy, ShadowQueue


class Holder:
    """What the queue reads of a variant's ModelHolder (hashed by identity, as it is)."""

    def __init__(self, model) -> None:
        self.current = model


class Doubler:
    """A shadow model: twice column x; refuses a batch with a negative x in it."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, columns: dict) -> np.ndarray:
        x = np.asarray(columns["x"], dtype=float)
        self.calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative x")
        return x * 2


def copy(holder, i: int, xs: list, *, columns=None, logged=True, sequences=True) -> ShadowCopy:
    return ShadowCopy(
        "shadow", 3, holder, f"r{i}", f"client{i}", 1.0, [f"k{i}-{j}" for j in range(len(xs))],
        columns if columns is not None else {"x": list(xs), "y": ["a"] * len(xs)}, len(xs),
        logged, sequences,
    )  # fmt: skip


async def scored(queue: ShadowQueue) -> None:
    """Wait (2 s at most) until nothing submitted is still waiting or being scored."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not queue._requests:
            return


def run(copies, *, batch_rows=4, max_requests=1000, model=None):
    """Submit ``copies`` at once, let the queue score them; (entries, queue, model)."""
    model = model or Doubler()
    entries: list = []
    metrics = ServingMetrics()

    async def main() -> ShadowQueue:
        queue = ShadowQueue(
            metrics, deployment="churn", log_entry=entries.append, max_requests=max_requests,
            batch_rows=batch_rows, batch_wait_s=0.01,
        )  # fmt: skip
        queue.start()
        holder = Holder(model)
        for c in copies(holder):
            queue.submit(c)
        await scored(queue)
        await queue.close()
        metrics.tally.flush()  # what the tally would write FLUSH_S later, as a scrape does
        return queue

    queue = asyncio.run(main())
    return entries, queue, model


def test_copies_are_scored_in_batches_and_each_outcome_finds_its_request():
    sizes = [1, 3, 1, 2, 2]
    entries, queue, model = run(
        lambda h: [copy(h, i, [float(10 * i + j) for j in range(n)]) for i, n in enumerate(sizes)]
    )
    assert model.calls == [4, 3, 2]  # whole copies, at most 4 rows a call
    assert [e.request_id for e in entries] == ["r0", "r1", "r2", "r3", "r4"]
    for i, (e, n) in enumerate(zip(entries, sizes, strict=True)):
        xs = [float(10 * i + j) for j in range(n)]
        assert e.columns == {"x": xs, "y": ["a"] * n} and e.n_rows == n
        assert e.output.tolist() == [2 * x for x in xs]
        assert e.keys == [f"k{i}-{j}" for j in range(n)]
        assert (e.role, e.status, e.client_request_id, e.revision) == (
            "shadow",
            "ok",
            f"client{i}",
            3,
        )
    assert queue.requests.value("churn", "shadow", "ok") == 5


def test_a_refused_batch_is_scored_copy_by_copy_and_odd_columns_alone():
    def copies(h):
        return [
            copy(h, 0, [1.0]),
            copy(h, 1, [-1.0]),  # the model refuses it: only it fails
            copy(h, 2, [2.0], logged=False),  # scored, counted, not logged
            copy(h, 3, [3.0], columns={"x": [3.0]}),  # other columns: scored alone
            # A large request's numpy columns: kept whole, scored alone.
            copy(h, 4, [4.0], columns={"x": np.array([4.0]), "y": np.array(["a"])},
                 sequences=False),
        ]  # fmt: skip

    entries, queue, model = run(copies)
    assert model.calls == [3, 1, 1, 1, 1, 1]  # the batch, its three copies, the odd two
    outcome = {e.request_id: (e.status, e.error, None if e.output is None else e.output.tolist())
               for e in entries}  # fmt: skip
    assert outcome == {
        "r0": ("ok", None, [2.0]),
        "r1": ("error", "ValueError: negative x", None),
        "r3": ("ok", None, [6.0]),
        "r4": ("ok", None, [8.0]),
    }
    assert queue.requests.value("churn", "shadow", "ok") == 4
    assert queue.requests.value("churn", "shadow", "error") == 1


def test_a_full_queue_drops_and_counts():
    entries, queue, _ = run(lambda h: [copy(h, i, [1.0]) for i in range(10)], max_requests=4)
    assert len(entries) == 4 and queue.dropped.value("churn", "shadow") == 6


def test_waiting_copies_leave_nothing_for_the_garbage_collector():
    """Copies wait up to ``batch_wait_s``: a dict of lists kept per request made the
    collector run every few requests and its full collections pause the event loop
    (the shadow cost a quarter of the primary's median at concurrency 1)."""
    metrics = ServingMetrics()

    async def main() -> int:
        queue = ShadowQueue(metrics, deployment="churn", log_entry=None, max_requests=5000)
        queue._arrived = asyncio.Event()  # accepting, but nothing scores: all stay waiting
        holder = Holder(Doubler())
        queue.submit(copy(holder, -1, [0.0]))
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            for i in range(2000):
                queue.submit(copy(holder, i, [float(i)]))
            return len(gc.get_objects()) - before
        finally:
            gc.enable()

    grown = asyncio.run(main())
    assert grown < 50, f"{grown} objects tracked by the collector after 2,000 waiting copies"


class Flaky:
    """A shadow model that raises for its first ``failures`` calls, then doubles x."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[int] = []

    def predict(self, columns: dict) -> np.ndarray:
        self.calls.append(len(columns["x"]))
        if len(self.calls) <= self.failures:
            raise RuntimeError("broken")
        return np.asarray(columns["x"], dtype=float) * 2


def test_a_shadow_failing_on_everything_costs_one_call_a_turn():
    entries, queue, model = run(
        lambda h: [copy(h, i, [1.0]) for i in range(16)], batch_rows=4, model=Flaky(10**6)
    )
    # A batch, then three copies alone: enough. The next batch: one copy alone, a probe;
    # it fails, and so do the turn's last two batches, without a call.
    assert model.calls == [4, 1, 1, 1, 1]
    assert [e.request_id for e in entries] == [f"r{i}" for i in range(16)]
    assert {(e.status, e.error) for e in entries} == {("error", "RuntimeError: broken")}
    assert queue.requests.value("churn", "shadow", "error") == 16


def test_a_shadow_that_recovers_passes_its_probe_and_is_batched_again():
    entries, _, model = run(
        lambda h: [copy(h, i, [1.0]) for i in range(8)], batch_rows=4, model=Flaky(4)
    )
    assert model.calls == [4, 1, 1, 1, 1, 3]  # failed through; the probe passes; a batch
    assert [e.status for e in entries] == ["error"] * 4 + ["ok"] * 4
    assert [e.output.tolist() for e in entries[4:]] == [[2.0]] * 4


def test_a_fault_while_scoring_loses_that_batch_only(caplog):
    """Whatever breaks in a batch's bookkeeping (here the log callback) is logged; the
    queue's counts are released and later copies are still scored."""
    model, metrics = Doubler(), ServingMetrics()

    def broken_log(entry) -> None:
        raise RuntimeError("log exploded")

    async def main() -> ShadowQueue:
        queue = ShadowQueue(
            metrics, deployment="churn", log_entry=broken_log, max_requests=3,
            batch_wait_s=0.01,
        )  # fmt: skip
        queue.start()
        holder = Holder(model)
        for round_ in range(2):
            for i in range(3):
                queue.submit(copy(holder, 10 * round_ + i, [1.0]))
            await scored(queue)
        await queue.close()
        metrics.tally.flush()  # what the tally would write FLUSH_S later, as a scrape does
        return queue

    queue = asyncio.run(main())
    assert model.calls == [3, 3]  # the second round was scored: nothing was left counted
    assert queue.dropped.value("churn", "shadow") == 0
    assert "a batch could not be scored" in caplog.text and "log exploded" in caplog.text


def test_closing_while_a_shadow_call_returns_stops_the_queue():
    """A graceful stop cancels the queue's task; a cancellation that arrived as the
    shadow's predict call returned was once lost (asyncio.wait_for swallowed it), and
    the stop then waited forever, before the prediction log's last flush."""
    gate = threading.Event()

    class Gated:
        def predict(self, columns: dict) -> np.ndarray:
            gate.wait(5)
            return np.asarray(columns["x"], dtype=float)

    async def main() -> None:
        queue = ShadowQueue(ServingMetrics(), deployment="churn", log_entry=None,
                            batch_wait_s=0.0)  # fmt: skip
        queue.start()
        queue.submit(copy(Holder(Gated()), 0, [1.0]))
        await asyncio.sleep(0.1)  # the copy is being scored: its call waits at the gate
        gate.set()
        time.sleep(0.2)  # the call returns; its result waits for the loop's next turn
        closing = asyncio.ensure_future(queue.close())
        done, _ = await asyncio.wait([closing], timeout=3)
        assert done, "close() did not stop the queue"
        assert queue._task is not None and queue._task.cancelled()

    asyncio.run(main())
