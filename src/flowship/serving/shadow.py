"""Shadow variants: a copy of each answered request, scored off the response path.

``submit`` is called after the primary's response was sent. It only puts the request on
a bounded queue (by requests and by rows); when the queue is full the copy is dropped
and counted in ``flowship_shadow_dropped_total``, so a slow shadow can never build an
unbounded backlog. One background task takes copies off the queue and runs the shadow's
predict on its own thread (never on the event loop, so even a fast shadow model cannot
delay a primary request's turn), catches whatever it raises, and logs the outcome with
the primary's ``request_id``, so both can be compared row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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
    ) -> None:
        self.deployment = deployment
        self._log_entry = log_entry
        self.max_requests, self.max_rows = max_requests, max_rows
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[ShadowCopy] | None = None
        self._rows = 0
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
        self._queue = asyncio.Queue(self.max_requests)
        self._task = asyncio.create_task(self._run(), name="flowship-shadow")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, copy: ShadowCopy) -> None:
        queue = self._queue
        if queue is None or self._rows + copy.n_rows > self.max_rows:
            self.dropped.inc(self.deployment, copy.variant)
            return
        try:
            queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.dropped.inc(self.deployment, copy.variant)
            return
        self._rows += copy.n_rows

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            copy = await self._queue.get()
            self._rows -= copy.n_rows
            predictor = copy.holder.current
            if predictor is None:
                self.dropped.inc(self.deployment, copy.variant)
                continue
            start = time.perf_counter()
            output, error = None, None
            try:
                output = await asyncio.wait_for(
                    loop.run_in_executor(self._executor, predictor.predict, copy.columns),
                    self.timeout_s,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything the shadow does stays with the shadow
                error = f"{type(exc).__name__}: {exc}"[:2000]
            elapsed = (time.perf_counter() - start) * 1000
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
