"""Shadow variants: a copy of each answered request, scored off the response path.

``submit`` is called after the primary's response was sent. It only puts the request on
a bounded queue (by requests and by rows); when the queue is full the copy is dropped
and counted in ``flowship_shadow_dropped_total``, so a slow shadow can never build an
unbounded backlog. One background task scores the copies in batches: once a copy is
waiting it lets more gather for ``batch_wait_s``, then scores up to ``batch_rows`` rows
of each shadow variant in ONE predict call on its own thread. A shadow's predict holds
the GIL while it runs, so per-request scoring would compete with the next primary
request every time (at concurrency 1 its whole cost showed in the primary's median);
batched, it competes once per batch and costs one call's overhead for many requests.
A batch that cannot be merged, or that the model rejects, is scored copy by copy, so
each copy gets its own outcome. Whatever a shadow raises stays with the shadow; each
outcome is logged with the primary's ``request_id``, so both can be compared row by
row. A shadow's ``latency_ms`` is the time of the predict call that scored its copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowship.serving.batching import merge_columns
from flowship.serving.metrics import Counter, ServingMetrics
from flowship.serving.prediction_log import LogEntry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ShadowCopy:
    variant: str
    revision: int
    holder: Any  # the shadow variant's ModelHolder
    request_id: str
    client_request_id: str | None
    ts: float  # time.time() of the answer
    keys: list[str] | None
    columns: dict[str, Any]
    n_rows: int


class ShadowQueue:
    def __init__(
        self,
        metrics: ServingMetrics,
        *,
        deployment: str,
        log_entry: Callable[[LogEntry], None] | None,
        max_requests: int = 1000,
        max_rows: int = 100_000,
        timeout_s: float = 30.0,
        batch_rows: int = 256,
        batch_wait_s: float = 0.05,
    ) -> None:
        self.deployment = deployment
        self._log_entry = log_entry
        self.max_requests, self.max_rows = max_requests, max_rows
        self.timeout_s = timeout_s
        self.batch_rows, self.batch_wait_s = batch_rows, batch_wait_s
        self._copies: deque[ShadowCopy] = deque()
        self._rows = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowship-shadow")
        self.requests = metrics.register(
            Counter(
                "flowship_shadow_requests_total",
                "Requests scored by shadow variants, by outcome (ok, error).",
                ("deployment", "variant", "outcome"),
            )
        )
        self.dropped = metrics.register(
            Counter(
                "flowship_shadow_dropped_total",
                "Shadow copies dropped because the shadow queue was full.",
                ("deployment", "variant"),
            )
        )

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="flowship-shadow")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, copy: ShadowCopy) -> None:
        if (
            self._arrived is None
            or len(self._copies) >= self.max_requests
            or self._rows + copy.n_rows > self.max_rows
        ):
            self.dropped.inc(self.deployment, copy.variant)
            return
        self._copies.append(copy)
        self._rows += copy.n_rows
        self._arrived.set()

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            if not self._copies:
                self._arrived.clear()
                await self._arrived.wait()
            if self._rows < self.batch_rows:  # let the copies of the next moment gather
                await asyncio.sleep(self.batch_wait_s)
            for (variant, _), copies in self._next_batch().items():
                await self._score(variant, copies)

    def _next_batch(self) -> dict[tuple[str, Any], list[ShadowCopy]]:
        """Whole copies up to ``batch_rows`` rows (at least one), by variant, in order."""
        batch: dict[tuple[str, Any], list[ShadowCopy]] = {}
        rows = 0
        while self._copies and (not rows or rows + self._copies[0].n_rows <= self.batch_rows):
            copy = self._copies.popleft()
            self._rows -= copy.n_rows
            rows += copy.n_rows
            batch.setdefault((copy.variant, copy.holder), []).append(copy)
        return batch

    async def _score(self, variant: str, copies: list[ShadowCopy]) -> None:
        predictor = copies[0].holder.current
        if predictor is None:
            self.dropped.inc(self.deployment, variant, amount=len(copies))
            return
        if len(copies) > 1:
            merged = merge_columns([c.columns for c in copies])
            if merged is not None:
                rows = sum(c.n_rows for c in copies)
                output, error, elapsed = await self._predict(predictor, merged)
                if error is None and len(output) == rows:  # type: ignore[arg-type]
                    offsets = np.cumsum([0] + [c.n_rows for c in copies]).tolist()
                    for i, copy in enumerate(copies):
                        part = output[offsets[i] : offsets[i + 1]]  # type: ignore[index]
                        self._outcome(copy, predictor, part, None, elapsed)
                    return
        for copy in copies:  # one copy, or a batch the model refused: each on its own
            output, error, elapsed = await self._predict(predictor, copy.columns)
            self._outcome(copy, predictor, output, error, elapsed)

    async def _predict(
        self, predictor: Any, columns: dict[str, Any]
    ) -> tuple[np.ndarray | None, str | None, float]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        output, error = None, None
        try:
            output = await asyncio.wait_for(
                loop.run_in_executor(self._executor, predictor.predict, columns),
                self.timeout_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything the shadow does stays with the shadow
            error = f"{type(exc).__name__}: {exc}"[:2000]
        return output, error, (time.perf_counter() - start) * 1000

    def _outcome(
        self, copy: ShadowCopy, predictor: Any, output: Any, error: str | None, elapsed: float
    ) -> None:
        self.requests.inc(self.deployment, copy.variant, "error" if error else "ok")
        if error:
            log.debug("Shadow %s failed on %s: %s", copy.variant, copy.request_id, error)
        if self._log_entry is not None:
            self._log_entry(
                LogEntry(
                    request_id=copy.request_id,
                    client_request_id=copy.client_request_id,
                    ts=copy.ts,
                    revision=copy.revision,
                    variant=copy.variant,
                    role="shadow",
                    predictor=predictor,
                    keys=copy.keys,
                    columns=copy.columns,
                    n_rows=copy.n_rows,
                    output=output,
                    latency_ms=elapsed,
                    status="error" if error else "ok",
                    error=error,
                )
            )
