"""The server's heap after a switch: what was loaded is frozen out of the collector's
full collections, and what the previous version left is freed, not frozen for good."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from flowship.serving import heap
from tests._caches import reset_caches
from tests.serving.test_follow import _register_switch_model


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_survivors_and_frees_them_at_the_next_settle():
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert all(o is not cycle for o in gc.get_objects())  # out of the collector's sight
    del cycle
    gc.collect()
    assert ref() is not None  # frozen: a full collection does not see it die
    heap.settle()
    assert ref() is None  # the next settle unfreezes first: freed


def test_following_a_ref_freezes_the_loaded_version_and_frees_the_replaced_one(
    serving_store, monkeypatch
):
    from mlflow import MlflowClient

    from flowship.serving.config import ServeConfig
    from flowship.serving.follow import ModelHolder
    from flowship.serving.metrics import ServingMetrics

    _register_switch_model(serving_store, "heap")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", serving_store.uri)
    monkeypatch.setenv("FLOWSHIP_HOME", str(serving_store.home))
    reset_caches()
    client = MlflowClient(serving_store.uri)
    config = ServeConfig(ref="models:/heap@production", poll_interval_s=0.2)
    holder = ModelHolder(config, ServingMetrics())

    async def until(condition) -> None:
        for _ in range(600):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    async def main() -> weakref.ref:
        gc.unfreeze()
        task = asyncio.create_task(holder.follow())
        try:
            await until(lambda: holder.current is not None and gc.get_freeze_count() > 0)
            first = holder.current
            assert all(o is not first for o in gc.get_objects())  # frozen with the heap
            replaced = weakref.ref(first)
            del first
            client.set_registered_model_alias("heap", "production", "2")
            await until(lambda: holder.current.model_version == "2")
            frozen = gc.get_freeze_count()
            await until(lambda: gc.get_freeze_count() != frozen)  # the settle after it
            return replaced
        finally:
            task.cancel()

    replaced = asyncio.run(main())
    assert replaced() is None  # version 1 is gone, not kept frozen
    reset_caches()
