"""Shadow variants: a copy of each answered request, scored off the response path.

``submit`` is called after the primary's response was sent. It only adds the copy to a
bounded queue (by requests and by rows); when the queue is full the copy is dropped and
counted in ``flowship_shadow_dropped_total``, so a slow shadow can never build an
unbounded backlog. One background task scores the copies in batches: once a copy is
waiting it lets more gather for ``batch_wait_s``, then scores up to ``batch_rows`` rows
of each shadow variant in ONE predict call on its own thread. A shadow's predict holds
the GIL while it runs, so per-request scoring would compete with the next primary
request every time (at concurrency 1 its whole cost showed in the primary's median);
batched, it competes once per batch and costs one call's overhead for many requests.

Waiting copies are kept column by column (``_Waiting``), for the reason the prediction
log's buffer is: a copy kept as its own dict of lists survives for up to
``batch_wait_s``, and thousands of such survivors a second made the garbage collector
run every few requests and its full collections (30-40 ms pauses of the event loop)
frequent; at concurrency 1 a shadow then cost the primary a quarter of its median.

A batch the model rejects (or answers with the wrong number of rows) is scored copy by
copy, so each copy gets its own outcome, until ``RETRY_FAILURES`` copies in a row fail
alone too: the rest of the batch gets the last error without a call of its own. After
such a batch, the variant's next batch starts with one copy alone (a probe) and is
scored only if the probe passes; a failed probe fails the rest of that turn's copies of
the variant too (a turn: what gathered while the last was scored, or in
``batch_wait_s``). So a shadow that fails on everything costs one call a turn. (Retried
copy by copy, such a shadow held the GIL so often that it tripled the primary's median
at concurrency 8.) A copy whose columns differ from the others', or
that holds numpy arrays (a large request, decoded in the decoder process), is scored
alone. Whatever a shadow raises stays with the shadow; each outcome is logged with the
primary's ``request_id``, so both can be compared row by row. A shadow's
``latency_ms`` is the time of the predict call that scored its copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from flowship.serving.metrics import Counter, ServingMetrics
from flowship.serving.prediction_log import LogEntry

log = logging.getLogger(__name__)

RETRY_FAILURES = 3  # copies of a refused batch scored alone that may fail in a row


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
    logged: bool  # its outcome goes to the prediction log (the request was sampled)
    sequences: bool  # every column a list (decoded inline), else numpy arrays


class _Waiting:
    """The copies one shadow variant has yet to score: their columns merged as they
    arrive (plain lists of numbers and strings, which the garbage collector does not
    track), and per copy what its outcome needs, in parallel lists."""

    __slots__ = ("columns", "sizes", "request_ids", "client_ids", "ts", "revisions",
                 "logged", "keys", "odd", "requests", "rows", "_pick", "_targets")  # fmt: skip

    def __init__(self, first: ShadowCopy) -> None:
        self.columns: dict[str, list] = {name: [] for name in first.columns}
        names = list(self.columns)
        # A copy's values in the order of ``_targets``, extended in one C-level loop.
        self._pick = (lambda c: (c[names[0]],)) if len(names) == 1 else itemgetter(*names)
        self._targets = list(self.columns.values())
        self.sizes: list[int] = []
        self.request_ids: list[str] = []
        self.client_ids: list[str | None] = []
        self.ts: list[float] = []
        self.revisions: list[int] = []
        self.logged: list[bool] = []
        self.keys: list[str | None] = []  # one per row
        self.odd: list[ShadowCopy] = []  # numpy columns, or other columns: kept whole
        self.requests = self.rows = 0  # every copy, merged or odd

    def add(self, copy: ShadowCopy) -> None:
        self.requests += 1
        self.rows += copy.n_rows
        if not copy.sequences or copy.columns.keys() != self.columns.keys():
            self.odd.append(copy)  # a large request's arrays are not unpacked value by value
            return
        deque(map(list.extend, self._targets, self._pick(copy.columns)), maxlen=0)
        self.sizes.append(copy.n_rows)
        self.request_ids.append(copy.request_id)
        self.client_ids.append(copy.client_request_id)
        self.ts.append(copy.ts)
        self.revisions.append(copy.revision)
        self.logged.append(copy.logged)
        self.keys.extend(copy.keys if copy.keys is not None else [None] * copy.n_rows)

    def chunks(self, max_rows: int) -> list[tuple[int, int, int, int]]:
        """(first copy, end copy, first row, end row) of whole copies up to ``max_rows``
        rows each (at least one copy)."""
        chunks, first, start, rows = [], 0, 0, 0
        for i, n in enumerate(self.sizes):
            if rows and rows + n > max_rows:
                chunks.append((first, i, start, start + rows))
                first, start, rows = i, start + rows, 0
            rows += n
        if rows or first < len(self.sizes):
            chunks.append((first, len(self.sizes), start, start + rows))
        return chunks

    def copy(self, variant: str, holder: Any, i: int, start: int) -> ShadowCopy:
        """The ``i``-th copy again (its rows start at ``start``), for its outcome."""
        end = start + self.sizes[i]
        keys = self.keys[start:end]
        return ShadowCopy(
            variant, self.revisions[i], holder, self.request_ids[i], self.client_ids[i],
            self.ts[i], keys if keys and keys[0] is not None else None,
            {name: values[start:end] for name, values in self.columns.items()},
            self.sizes[i], self.logged[i], True,
        )  # fmt: skip


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
        self._waiting: dict[tuple[str, Any], _Waiting] = {}  # (variant, holder) ->
        self._requests = self._rows = 0  # waiting or being scored
        self._failing: set[tuple[str, Any]] = set()  # variants whose last batch failed
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowship-shadow")
        self._tally = metrics.tally
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

    def _count(self, counter: Counter, *labels: str, amount: float = 1.0) -> None:
        """Counted through the loop's tally: one metrics write per flush, not one
        per copy (a full queue drops a copy per request)."""
        self._tally.count(counter, (self.deployment, *labels), amount)

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="flowship-shadow")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # raises nothing of the task's, only our own
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, copy: ShadowCopy) -> None:
        if (
            self._arrived is None
            or self._requests >= self.max_requests
            or self._rows + copy.n_rows > self.max_rows
        ):
            self._count(self.dropped, copy.variant)
            return
        key = (copy.variant, copy.holder)
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = _Waiting(copy)
        waiting.add(copy)
        self._requests += 1
        self._rows += copy.n_rows
        self._arrived.set()

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            if not self._requests:
                self._arrived.clear()
                await self._arrived.wait()
            if self._rows < self.batch_rows:  # let the copies of the next moment gather
                await asyncio.sleep(self.batch_wait_s)
            waiting, self._waiting = self._waiting, {}
            for (variant, holder), copies in waiting.items():
                try:
                    await self._score(variant, holder, copies)
                except Exception:  # a fault here must not stop every later shadow copy
                    log.exception("Shadow %s: a batch could not be scored.", variant)
                finally:  # counted until scored: the queue's bound holds them too
                    self._requests -= copies.requests
                    self._rows -= copies.rows
            self._failing.intersection_update(waiting)  # bounded: variants still sent copies

    async def _score(self, variant: str, holder: Any, waiting: _Waiting) -> None:
        probe: tuple[str, float] | None = None  # a failed probe fails the turn's later chunks
        for first, end, start, stop in waiting.chunks(self.batch_rows):
            probe = await self._score_chunk(
                variant, holder, waiting, first, end, start, stop, probe
            )
        for copy in waiting.odd:
            await self._score_alone(holder.current, copy)

    async def _score_chunk(
        self, variant, holder, waiting, first, end, start, stop, failed_probe
    ) -> tuple[str, float] | None:
        """Score one chunk; the (error, milliseconds) of a failed probe, else None."""
        predictor = holder.current
        if predictor is None:
            self._count(self.dropped, variant, amount=end - first)
            return None
        key = (variant, holder)
        if key in self._failing:  # its last batch failed through and through: probe first
            if failed_probe is None:
                probe = waiting.copy(variant, holder, first, start)
                error, elapsed = await self._score_alone(predictor, probe)
                first, start = first + 1, start + probe.n_rows
                if error is not None:
                    failed_probe = (error, elapsed)
            if failed_probe is not None:  # the rest fail as the probe did, without a call
                error, elapsed = failed_probe
                self._settle(
                    variant, holder, waiting, predictor, first, end, start, None, error, elapsed
                )
                return failed_probe
            self._failing.discard(key)
            if first == end:
                return None
        columns = {name: values[start:stop] for name, values in waiting.columns.items()}
        output, error, elapsed = await self._predict(predictor, columns)
        if error is None and len(output) == stop - start:  # type: ignore[arg-type]
            self._settle(
                variant, holder, waiting, predictor, first, end, start, output, None, elapsed
            )
            return None
        # Refused as a batch: each copy on its own, with its own outcome, until
        # RETRY_FAILURES copies in a row fail alone too; the rest fail as they did.
        failures = 0
        for i in range(first, end):
            if failures == RETRY_FAILURES:
                self._settle(
                    variant, holder, waiting, predictor, i, end, start, None, error, elapsed
                )
                break
            copy = waiting.copy(variant, holder, i, start)
            error, elapsed = await self._score_alone(predictor, copy)
            failures = failures + 1 if error else 0
            start += copy.n_rows
        if failures == RETRY_FAILURES:
            self._failing.add(key)
        return None

    def _settle(
        self, variant, holder, waiting, predictor, first, end, start, output, error, elapsed
    ) -> None:
        """The outcome of copies ``first`` to ``end`` (rows from ``start``), scored in one
        call (their rows of ``output``) or failed with ``error`` without a call of their
        own: counted at once; only the logged ones are built again, for the log."""
        if first == end:
            return
        self._count(self.requests, variant, "error" if error else "ok", amount=end - first)
        if self._log_entry is None:
            return
        row = start
        for i in range(first, end):
            n = waiting.sizes[i]
            if waiting.logged[i]:
                part = None if output is None else output[row - start : row - start + n]
                self._log(waiting.copy(variant, holder, i, row), predictor, part, error, elapsed)
            row += n

    async def _score_alone(self, predictor: Any, copy: ShadowCopy) -> tuple[str | None, float]:
        """Score one copy; (its error or None, the call's milliseconds)."""
        if predictor is None:
            self._count(self.dropped, copy.variant)
            return None, 0.0
        output, error, elapsed = await self._predict(predictor, copy.columns)
        self._outcome(copy, predictor, output, error, elapsed)
        return error, elapsed

    def _outcome(
        self, copy: ShadowCopy, predictor: Any, output: Any, error: str | None, elapsed: float
    ) -> None:
        self._count(self.requests, copy.variant, "error" if error else "ok")
        if error:
            log.debug("Shadow %s failed on %s: %s", copy.variant, copy.request_id, error)
        if copy.logged:
            self._log(copy, predictor, output, error, elapsed)

    async def _predict(
        self, predictor: Any, columns: dict[str, Any]
    ) -> tuple[np.ndarray | None, str | None, float]:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        output, error = None, None
        try:
            # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that arrives as
            # the call returns, and the queue's task then outlived close() (a hung stop).
            async with asyncio.timeout(self.timeout_s):
                output = await loop.run_in_executor(self._executor, predictor.predict, columns)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything the shadow does stays with the shadow
            error = f"{type(exc).__name__}: {exc}"[:2000]
        return output, error, (time.perf_counter() - start) * 1000

    def _log(
        self, copy: ShadowCopy, predictor: Any, output: Any, error: str | None, elapsed: float
    ) -> None:
        if self._log_entry is None:
            return
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
