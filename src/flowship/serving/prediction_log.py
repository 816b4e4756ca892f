"""The prediction log: every scored row of a deployment, appended to a Delta table.

Requests only append a small entry to an in-memory buffer (no I/O on the request path).
A background thread turns the buffer into one Arrow table every ``flush_interval_s``,
or as soon as ``flush_rows`` rows wait, and hands it to the log's writer process, which
appends it in ONE Delta commit. The commit runs in its own process (``helper_process``)
because deltalake holds the GIL for much of it (15-25 ms of CPU), time the event loop
would otherwise lose; the thread waits for the outcome, so the commits of one worker
are made one after the other and counted in ``/metrics``. The buffer is bounded: when
the table cannot keep up, new rows are dropped and counted, never queued without bound.
``close()`` (a graceful stop) flushes everything; a killed server loses at most the rows
buffered since the last flush (its writer completes a commit under way, then exits).
Several workers append to one table at once: ``batch.sinks.append_delta`` retries lost
commit races, so no commit is lost.

Columns (docs/deployments.md): request_id, client_request_id, ts, date (the partition),
deployment, revision, variant, role, model_name, model_version, run_id, key, latency_ms,
status, error, output, then the model's input features under their own names (a
feature named like one of these columns is stored as ``input_<name>``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowship.deployments.spec import LOG_COLUMNS
from flowship.serving.helper_process import finishing, helper_pool
from flowship.serving.metrics import Counter, ServingMetrics

log = logging.getLogger(__name__)

_RESERVED = frozenset(LOG_COLUMNS)
_FEATURE_TYPES = {
    "double": pa.float64(),
    "float": pa.float64(),
    "long": pa.int64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}


@dataclass(slots=True)
class LogEntry:
    """The rows one variant scored (or failed to score) for one request."""

    request_id: str
    client_request_id: str | None
    ts: float  # time.time() of the answer
    revision: int
    variant: str
    role: str  # primary | shadow
    predictor: Any
    keys: list[str] | None  # one per row, or None without a key
    columns: dict[str, Any]
    n_rows: int
    output: np.ndarray | None  # None when the model failed
    latency_ms: float
    status: str = "ok"  # ok | error
    error: str | None = None


class PredictionLog:
    def __init__(
        self,
        uri: str,
        *,
        deployment: str,
        metrics: ServingMetrics,
        flush_interval_s: float = 1.0,
        flush_rows: int = 10_000,
        max_rows: int | None = None,
    ) -> None:
        self.uri, self.deployment = uri, deployment
        self.flush_interval_s, self.flush_rows = flush_interval_s, flush_rows
        self.max_rows = max_rows or max(100_000, 10 * flush_rows)
        # Started here, before the deployment is served (a second or two), so that the
        # first flush does not wait for it: rows of the first seconds are committed as
        # soon as those of any other second.
        self._writer: ProcessPoolExecutor | None = helper_pool()
        try:
            self._writer.submit(_start_writer).result()
        except BrokenProcessPool:
            log.error("Prediction log: the writer process did not start; retrying at the flush.")
            self._writer = None
        self._entries: list[LogEntry] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.rows = metrics.register(
            Counter(
                "flowship_prediction_log_rows_total",
                "Prediction-log rows by outcome: written, dropped (buffer full) or failed.",
                ("deployment", "outcome"),
            )
        )
        self.commits = metrics.register(
            Counter(
                "flowship_prediction_log_commits_total",
                "Delta commits made by the prediction log (one per flush).",
                ("deployment",),
            )
        )
        self._thread = threading.Thread(target=self._run, name="flowship-log", daemon=True)
        self._thread.start()

    def add(self, entry: LogEntry) -> None:
        """Buffer ``entry``; O(1), never blocks on I/O."""
        with self._lock:
            if self._rows + entry.n_rows > self.max_rows:
                self.rows.inc(self.deployment, "dropped", amount=entry.n_rows)
                return
            self._entries.append(entry)
            self._rows += entry.n_rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending_rows(self) -> int:
        return self._rows

    def close(self) -> None:
        """Stop the thread and flush every buffered row (a graceful stop)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.flush()
        if self._writer is not None:
            self._writer.shutdown()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return  # close() flushes what is left
            self.flush()

    def flush(self) -> int:
        """Commit every buffered row in one Delta commit; returns the rows written."""
        with self._lock:
            entries, self._entries, rows, self._rows = self._entries, [], self._rows, 0
        if not entries:
            return 0
        try:
            table = to_arrow(entries, self.deployment)
            del entries
            if self._writer is None:
                self._writer = helper_pool()
            error = self._writer.submit(_append, self.uri, table).result()
        except BrokenProcessPool:
            self._writer = None  # a new writer process at the next flush
            error = "the log writer process died"
        except Exception as exc:  # the log must never take the server down
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if error is not None:
            log.error(
                "Prediction log: %d rows could not be written to %s (%s).", rows, self.uri, error
            )
            self.rows.inc(self.deployment, "failed", amount=rows)
            return 0
        self.rows.inc(self.deployment, "written", amount=rows)
        self.commits.inc(self.deployment)
        return rows


_tables: dict[str, Any] = {}  # in the writer process: the open DeltaTable of each uri


def _start_writer() -> None:
    """In the writer process: import what a commit needs, before the first one."""
    import deltalake  # noqa: F401

    import flowship.batch.sinks  # noqa: F401


def _append(uri: str, table: pa.Table) -> str | None:
    """In the writer process: ``table`` in one Delta commit; the error, or None."""
    from flowship.batch.sinks import append_delta

    with finishing():  # a commit the parent's death interrupts is completed first
        try:
            append_delta(_tables.get(uri) or uri, table, partition_by=["date"])
            if uri not in _tables:
                from deltalake import DeltaTable

                _tables[uri] = DeltaTable(uri)
        except Exception as exc:
            _tables.pop(uri, None)  # the next flush re-reads the table, not this handle
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def to_arrow(entries: list[LogEntry], deployment: str) -> pa.Table:
    """The buffered entries as one table (the schema in the module docstring). Built
    column by column with C-level helpers (itemgetter, chain, Arrow's take): this runs in
    the serving process, where its time is taken from requests."""
    sizes = [e.n_rows for e in entries]
    spread = None  # an entry's values repeated over its rows (single-row entries: as is)
    if any(n != 1 for n in sizes):
        spread = pa.array(np.repeat(np.arange(len(entries)), sizes))

    def per_entry(values: list[Any], kind: pa.DataType) -> pa.Array:
        array = pa.array(values, kind)
        return array if spread is None else array.take(spread)

    micros = (np.array([e.ts for e in entries]) * 1e6).astype("int64")
    ts = per_entry(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    keys = list(
        chain.from_iterable(e.keys if e.keys is not None else [None] * e.n_rows for e in entries)
    )
    predictors = [e.predictor for e in entries]
    arrays: dict[str, pa.Array] = {
        "request_id": per_entry([e.request_id for e in entries], pa.string()),
        "client_request_id": per_entry([e.client_request_id for e in entries], pa.string()),
        "ts": ts,
        "date": pc.cast(ts, pa.date32()),
        "deployment": pa.array([deployment] * len(ts), pa.string()),
        "revision": per_entry([e.revision for e in entries], pa.int64()),
        "variant": per_entry([e.variant for e in entries], pa.string()),
        "role": per_entry([e.role for e in entries], pa.string()),
        "model_name": per_entry([p.model_name for p in predictors], pa.string()),
        "model_version": per_entry([str(p.model_version or "") for p in predictors], pa.string()),
        "run_id": per_entry([p.run_id for p in predictors], pa.string()),
        "key": pa.array(keys, pa.string()),
        "latency_ms": per_entry([e.latency_ms for e in entries], pa.float64()),
        "status": per_entry([e.status for e in entries], pa.string()),
        "error": per_entry([e.error for e in entries], pa.string()),
        "output": _outputs(entries),
    }
    for name, array in _features(entries).items():
        arrays[f"input_{name}" if name in _RESERVED else name] = array
    return pa.table(arrays)


def _outputs(entries: list[LogEntry]) -> pa.Array:
    """Numeric predictions as double, probability rows as list<double>, others as text."""
    parts = [e.output if e.output is not None else None for e in entries]
    shapes = {p.ndim for p in parts if p is not None}
    numeric = all(p is None or p.dtype.kind in "biuf" for p in parts)
    values: list[Any] = []
    if numeric and shapes == {1} and all(p is not None for p in parts):
        return pa.array(np.concatenate(parts).astype("float64", copy=False), pa.float64())
    for part, entry in zip(parts, entries, strict=True):
        values.extend([None] * entry.n_rows if part is None else part.tolist())
    if numeric and shapes == {2}:
        return pa.array(values, pa.list_(pa.float64()))
    if numeric and shapes <= {1}:
        return pa.array(values, pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _features(entries: list[LogEntry]) -> dict[str, pa.Array]:
    """Each signature input as one column (null for rows of a model without it)."""
    types: dict[str, pa.DataType] = {}
    seen: set[int] = set()
    for entry in entries:  # a handful of distinct models per flush
        if id(entry.predictor) not in seen:
            seen.add(id(entry.predictor))
            for column in entry.predictor.input_columns:
                types.setdefault(column.name, _FEATURE_TYPES.get(column.type, pa.string()))
    if not types:
        return {}
    names = list(types)
    pick = itemgetter(*names) if len(names) > 1 else lambda columns: (columns[names[0]],)
    try:  # the common case: every entry has every column (lists, or numpy arrays)
        by_name = zip(*[pick(e.columns) for e in entries], strict=True)
        columns = {
            name: list(chain.from_iterable(parts))
            for name, parts in zip(names, by_name, strict=True)
        }
    except (KeyError, TypeError):  # some entry lacks a column: null for its rows
        columns = {
            name: list(chain.from_iterable(_rows(e.columns.get(name), e.n_rows) for e in entries))
            for name in names
        }
    out: dict[str, pa.Array] = {}
    for name, kind in types.items():
        values = columns[name]
        try:
            out[name] = pa.array(values, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            out[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return out


def _rows(column: Any, n_rows: int) -> Any:
    if column is None:
        return [None] * n_rows
    return column.tolist() if isinstance(column, np.ndarray) else column
