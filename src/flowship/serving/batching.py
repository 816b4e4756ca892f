"""Adaptive micro-batching: requests that are waiting at the same moment become one
predict call; a lone request is never held back.

A request's columns join a pending list; a flush is scheduled for the end of the
current event-loop turn (``call_soon``), so every request already received in that turn
rides along and nothing waits on a timer (unless ``max_wait_s`` asks for one). Fast
scikit-learn/ONNX models run inline on the event loop (a thread hop costs more than the
prediction); slow ones and pyfunc models run on one worker thread, and requests
arriving meanwhile form the next batch. A batch that cannot be merged, that the model
rejects or answers with the wrong number of rows is retried request by request, so one
bad request never fails its neighbours, and each gets its own error. A large request
never runs inline, whatever the model's speed: the event loop must keep answering
health checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from flowship.errors import FlowshipError, ScoringFailed
from flowship.serving.errors import Overloaded
from flowship.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

# Above this many seconds per predict call, predict on the worker thread instead of inline.
INLINE_LIMIT_S = 0.002
# Backends whose cost is predictable; pyfunc runs arbitrary user code, so it never blocks
# the event loop (health checks and timeouts keep working while it runs).
INLINE_BACKENDS = frozenset({"onnx", "linear", "forest", "native"})
# Batches with more rows than this go to the worker thread even for a fast model.
INLINE_MAX_ROWS = 4096
_EWMA = 0.2


@dataclass(slots=True)
class _Item:
    columns: dict[str, Any]
    n_rows: int
    future: asyncio.Future = field(repr=False)
    sequences: bool = False  # every value is a list or tuple (decoded JSON)
    tag: Any = None  # the caller's, handed to ``on_scored`` with the request's outcome


# (rows of the result, predictor, rows of the matrix it scored or None: Predictor.score)
Outcome = tuple[np.ndarray, Any, np.ndarray | None] | FlowshipError
# A batch scored in one predict call: its merged columns, result and scored matrix rows.
Together = tuple[dict[str, Any], np.ndarray, np.ndarray | None]
# outcomes, predictor, rows per predict call, the batch when it was scored in one call
Computed = tuple[list[Outcome], Any, list[int], Together | None]
# on_scored(predictor, [(tag, rows, columns, outcome) per tagged request it answered],
# the whole batch when those are all of it and it was scored in one call)
OnScored = Callable[[Any, list[tuple[Any, int, dict[str, Any], Outcome]], Together | None], None]


class MicroBatcher:
    def __init__(
        self,
        current: Callable[[], Any],
        *,
        metrics: ServingMetrics,
        max_batch_size: int = 64,
        max_wait_s: float = 0.0,
        max_queue: int = 256,
        on_scored: OnScored | None = None,
    ) -> None:
        self._current = current  # returns the Predictor to use now (or raises NotReady)
        # Called on the event loop once per answered batch with its tagged requests (the
        # prediction log: one buffer entry per batch, not per request).
        self._on_scored = on_scored
        self._metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._pending: list[_Item] = []
        self._waiting = 0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._cost_s = INLINE_LIMIT_S  # moving average of one predict call; measure first
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowship-predict")

    @property
    def waiting(self) -> int:
        return self._waiting

    async def predict(
        self, columns: dict[str, Any], n_rows: int, *, sequences: bool = False, tag: Any = None
    ) -> tuple[np.ndarray, Any, np.ndarray | None]:
        """Predict ``n_rows`` rows; returns the result rows, the Predictor that made them
        and the rows of the matrix it scored (``Predictor.score``: None when it took none).
        ``sequences``: every column is a list or tuple (lets batches merge without numpy).
        A request with a ``tag`` is handed to ``on_scored`` when it is answered."""
        if self._waiting >= self.max_queue:
            raise Overloaded(f"{self._waiting} requests are already waiting")
        loop = asyncio.get_running_loop()
        item = _Item(columns, n_rows, loop.create_future(), sequences, tag)
        self._pending.append(item)
        self._waiting += 1
        self._metrics.tally.queue(1)
        if not self._busy:
            full = self.max_wait_s == 0 or self._pending_rows() >= self.max_batch_size
            if full and self._timer is not None:  # a full batch does not wait for the timer
                self._timer.cancel()
                self._timer, self._scheduled = None, False
            if not self._scheduled:
                self._scheduled = True
                if full:
                    loop.call_soon(self._flush)
                else:
                    self._timer = loop.call_later(self.max_wait_s, self._flush)
        try:
            outcome = await item.future
        finally:
            self._waiting -= 1
            self._metrics.tally.queue(-1)
        if isinstance(outcome, FlowshipError):
            raise outcome
        return outcome

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _pending_rows(self) -> int:
        return sum(item.n_rows for item in self._pending)

    def _take(self) -> list[_Item]:
        """The next batch: whole requests, up to max_batch_size rows (at least one request)."""
        self._pending = [item for item in self._pending if not item.future.done()]  # timed out
        rows, count = 0, 0
        for item in self._pending:
            if count and rows + item.n_rows > self.max_batch_size:
                break
            rows += item.n_rows
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    def _flush(self) -> None:
        self._scheduled, self._timer = False, None
        while not self._busy:
            batch = self._take()
            if not batch:
                return
            try:
                predictor = self._current()
            except FlowshipError as error:
                self._deliver(batch, ([error] * len(batch), None, [], None))
                continue
            if (
                self._cost_s < INLINE_LIMIT_S
                and predictor.backend in INLINE_BACKENDS
                and sum(item.n_rows for item in batch) <= INLINE_MAX_ROWS
            ):
                self._deliver(batch, self._compute(predictor, batch))
                continue
            self._busy = True
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(self._executor, self._compute, predictor, batch)
            done.add_done_callback(lambda f, batch=batch: self._threaded_done(batch, f))

    def _threaded_done(self, batch: list[_Item], done: asyncio.Future) -> None:
        self._busy = False
        if done.cancelled():
            error = FlowshipError("The server is shutting down.")
            self._deliver(batch, ([error] * len(batch), None, [], None))
        else:
            self._deliver(batch, done.result())
        self._flush()

    def _deliver(self, batch: list[_Item], computed: Computed) -> None:
        outcomes, predictor, calls, together = computed
        if calls:  # the batch-size histogram, through the loop's tally (this is the loop)
            self._metrics.tally.batches(predictor, calls)
        tagged = []  # answered (not timed out), scored and tagged
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
                if item.tag is not None and type(outcome) is tuple:
                    tagged.append((item.tag, item.n_rows, item.columns, outcome))
        if tagged and self._on_scored is not None:
            try:
                self._on_scored(predictor, tagged, together if len(tagged) == len(batch) else None)
            except Exception:  # the answers are out; the batches after this one must go too
                log.exception("on_scored failed for a batch of %d requests", len(tagged))

    def _compute(self, predictor: Any, batch: list[_Item]) -> Computed:
        """Runs inline or on the worker thread; touches no event-loop object. Returns
        each request's outcome and the rows of each predict call that answered."""
        calls: list[int] = []
        if len(batch) > 1 and (scored := self._together(predictor, batch, calls)) is not None:
            outcomes, together = scored
            return outcomes, predictor, calls, together
        outcomes: list[Outcome] = []
        for item in batch:
            try:
                result, inputs = self._timed_predict(predictor, item.columns, item.n_rows, calls)
                outcomes.append((result, predictor, inputs))
            except FlowshipError as error:
                outcomes.append(error)
        return outcomes, predictor, calls, None

    def _together(
        self, predictor: Any, batch: list[_Item], calls: list[int]
    ) -> tuple[list[Outcome], Together] | None:
        """One predict call for the whole batch (each request's outcome, and the batch's
        own), or None when it cannot be built or scored (some request is bad: the caller
        finds out which, one by one)."""
        merged = merge_columns(
            [item.columns for item in batch],
            sequences=all(item.sequences for item in batch),
            one_row=all(item.n_rows == 1 for item in batch),
        )
        if merged is None:
            return None
        rows = sum(item.n_rows for item in batch)
        try:
            result, inputs = self._timed_predict(predictor, merged, rows, calls)
        except FlowshipError:  # some request is bad
            return None
        if len(result) != rows:
            calls.pop()  # rows cannot be told apart: score each request on its own
            return None
        outcomes: list[Outcome] = []
        start = 0
        for item in batch:  # plain ints: slicing with numpy's costs twice as much
            end = start + item.n_rows
            scored = None if inputs is None else inputs[start:end]
            outcomes.append((result[start:end], predictor, scored))
            start = end
        return outcomes, (merged, result, inputs)

    def _timed_predict(
        self, predictor: Any, columns: dict[str, Any], rows: int, calls: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``predictor.score``, timed for the inline choice; ``rows`` joins ``calls``."""
        start = time.perf_counter()
        try:
            result, inputs = predictor.score(columns)
        except FlowshipError:
            raise
        except Exception as exc:  # past the Predictor's own net: still the model's failure
            raise ScoringFailed(
                f"The model raised {type(exc).__name__}: {exc}", exc_type=type(exc).__name__
            ) from exc
        self._cost_s += _EWMA * ((time.perf_counter() - start) - self._cost_s)
        calls.append(rows)
        return result, inputs


def merge_columns(
    parts: list[dict[str, Any]], *, sequences: bool = False, one_row: bool = False
) -> dict | None:
    """Several requests' columns as one request's, or None when they cannot be merged
    (other column names, or values numpy refuses to put together). ``sequences``: every
    value is a list or tuple (merged without numpy); ``one_row``: and each holds one
    value (one row a request)."""
    first = parts[0]
    if any(columns.keys() != first.keys() for columns in parts[1:]):
        return None
    names = list(first)
    if not names:
        return {}
    # Each request's columns are picked in one C call and regrouped with zip: a Python
    # call per column made merging two requests cost more than scoring them one by one.
    pick = itemgetter(*names) if len(names) > 1 else lambda columns: (columns[names[0]],)
    try:
        if sequences and one_row:  # each request's values as a row, the rows transposed
            rows = [tuple(chain.from_iterable(pick(columns))) for columns in parts]
            return dict(zip(names, zip(*rows, strict=True), strict=True))
        join = _chain if sequences else _concat
        return dict(zip(names, map(join, zip(*map(pick, parts), strict=True)), strict=True))
    except (ValueError, TypeError):
        return None


def _chain(parts: tuple[Any, ...]) -> list[Any]:
    return list(chain.from_iterable(parts))


def _concat(parts: list[Any]) -> Any:
    if all(isinstance(part, list | tuple) for part in parts):
        return list(chain.from_iterable(parts))
    return np.concatenate([np.asarray(part) for part in parts])
