"""The prediction log: every scored row of a deployment, appended to a Delta table.

Each answered micro-batch appends one small entry to an in-memory buffer (``add_scored``;
a shadow's rows, a failed request's and a request several variants answered: one entry
per request, ``add``), with no I/O on the request path.
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
commit races, so no commit is lost. Every ``COMPACT_EVERY`` commits a writer merges the
table's small files (``_compact``: one compaction at a time per table), so that commits
do not grow slower with every flush a long-running server made.

Columns (docs/deployments.md): request_id, client_request_id, ts, date (the partition),
deployment, revision, variant, role, model_name, model_version, run_id, key, latency_ms,
status, error, output, then the model's input features under their own names (a
feature named like one of these columns is stored as ``input_<name>``).
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowship.deployments.spec import LOG_COLUMNS
from flowship.serving.helper_process import finishing, helper_pool
from flowship.serving.metrics import Counter, ServingMetrics
from flowship.store.locks import file_lock

log = logging.getLogger(__name__)

_RESERVED = frozenset(LOG_COLUMNS)
# Every this many commits, the writer merges the table's small files (one per flush).
COMPACT_EVERY = 100
COMPACT_TARGET_BYTES = 64 * 2**20
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
    """The rows one variant scored (or failed to score) for one request, when they do not
    come with their micro-batch (``PredictionLog.add_scored``): a shadow's, a failed
    request's, a request that several variants answered."""

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
    # The rows of the matrix the model scored (Predictor.score), copied instead of the
    # features in ``columns`` when the buffer can use them; None otherwise.
    inputs: np.ndarray | None = None


# A logged request, as DeploymentRouter.route tags it for its micro-batcher: request_id,
# client_request_id, key (the one key of all its rows, a list of one per row, or None),
# rows, revision, variant, start (time.perf_counter() when it was received).
Tag = tuple[str, str | None, str | list[str] | None, int, int, str, float]


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
        compact_every: int = COMPACT_EVERY,
    ) -> None:
        self.uri, self.deployment = uri, deployment
        self.compact_every = compact_every
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
        # pyarrow imports pandas (0.3 s of Python) on its first conversion from numpy. A
        # served model reloaded from its record never imported it, so the first flush
        # did, holding the GIL the event loop needs; here the deployment is still loading.
        pa.array(np.zeros(1))
        self._buffer = _Buffer()
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
        """Buffer ``entry``'s rows; a few microseconds, never blocks on I/O."""
        with self._lock:
            if not self._admit(entry.n_rows):
                return
            self._buffer.add(entry)
        if self._rows >= self.flush_rows:
            self._wake.set()

    def add_scored(
        self,
        predictor: Any,
        tagged: Sequence[Sequence[Any]],
        columns: dict[str, Any],
        n_rows: int,
        output: np.ndarray,
        inputs: np.ndarray | None,
    ) -> None:
        """Buffer the rows ``predictor`` answered for a micro-batch's ``tagged`` requests
        (each one's ``Tag`` first, in row order) as one entry: ``columns``, ``output`` and
        ``inputs`` are the batch's."""
        clock, ts = time.perf_counter(), time.time()
        with self._lock:
            if not self._admit(n_rows):
                return
            self._buffer.scored(
                predictor, tagged, columns, n_rows, output, inputs, clock=clock, ts=ts
            )
        if self._rows >= self.flush_rows:
            self._wake.set()

    def _admit(self, n_rows: int) -> bool:
        """Room for ``n_rows`` more rows (under the lock), or they are dropped and counted."""
        if self._rows + n_rows > self.max_rows:
            self.rows.inc(self.deployment, "dropped", amount=n_rows)
            return False
        self._rows += n_rows
        return True

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
            buffer, self._buffer, rows, self._rows = self._buffer, _Buffer(), self._rows, 0
        if not rows:
            return 0
        try:
            table = buffer.to_arrow(self.deployment)
            del buffer
            if self._writer is None:
                self._writer = helper_pool()
            error = self._writer.submit(_append, self.uri, table, self.compact_every).result()
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


# In the writer process, per uri: the open DeltaTable, and the commits made to it.
_tables: dict[str, Any] = {}
_commits: dict[str, int] = {}


def _start_writer() -> None:
    """In the writer process: import what a commit needs, before the first one."""
    import deltalake  # noqa: F401

    import flowship.batch.sinks  # noqa: F401


def _append(uri: str, table: pa.Table, compact_every: int = COMPACT_EVERY) -> str | None:
    """In the writer process: ``table`` in one Delta commit; the error, or None. Every
    ``compact_every`` commits, the table's small files are merged (``_compact``)."""
    from flowship.batch.sinks import append_delta

    with finishing():  # a commit the parent's death interrupts is completed first
        try:
            append_delta(
                _tables.get(uri) or uri,
                table,
                partition_by=["date"],
                writer_properties=_writer_properties(table.schema),
                configuration=_TABLE_PROPERTIES,
            )
            if uri not in _tables:
                from deltalake import DeltaTable

                _tables[uri] = DeltaTable(uri)
        except Exception as exc:
            _tables.pop(uri, None)  # the next flush re-reads the table, not this handle
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    _commits[uri] = _commits.get(uri, 0) + 1
    if _commits[uri] % compact_every == 0:
        _compact(uri, table.schema)
    return None


def _compact(uri: str, schema: pa.Schema) -> None:
    """Merge the table's files smaller than ``COMPACT_TARGET_BYTES`` into files of about
    that size, in one Delta commit. deltalake builds every commit from the statistics of
    every file in the table: with a file per flush, each commit cost more CPU than the
    last, without bound for a server that runs for days (docs/deployments.md).

    One compaction at a time per table: two at once both committed, each with its own
    copy of the same rows (deltalake 1.6 did not see the conflict; a test holds this),
    so workers and servers take a lock file in the table's directory, skip their turn
    when another holds it, and compact the table as it is after the lock (not this
    writer's handle, which may predate another's compaction). A table that is not a
    local path (object storage, where there is no such lock) is not compacted. Not under
    ``finishing()``: a writer whose server is gone exits at once, and an unfinished
    compaction changes nothing (its files are never committed). A compaction that fails
    is retried ``compact_every`` commits later; rows are never at stake."""
    from deltalake import DeltaTable

    root = _local_path(uri)
    if root is None:
        return
    try:
        with file_lock(root / ".flowship-compact.lock", wait=False) as locked:
            if not locked:
                return
            table = DeltaTable(uri)
            table.optimize.compact(
                target_size=COMPACT_TARGET_BYTES,
                max_concurrent_tasks=1,  # one core: the server uses the others
                writer_properties=_writer_properties(schema),
            )
            _tables[uri] = table
    except Exception as exc:
        log.warning("Prediction log: compacting %s failed (%s); retrying later.", uri, exc)


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return None if "://" in uri else Path(uri)


# File statistics (min, max, nulls per file, in the Delta log) only for the columns
# readers filter the log by. deltalake builds each commit from the statistics of every
# file in the table: kept for all ~50 columns, they made a commit cost about 1.6 times
# the CPU, and that cost grows with each file the table holds (docs/deployments.md).
_TABLE_PROPERTIES = {
    "delta.dataSkippingStatsColumns": (
        "ts,deployment,revision,variant,role,model_name,model_version,status"
    )
}
# Text columns with a new value in (nearly) every row: dictionary-encoded, Parquet first
# builds the dictionary, then gives it up for each page.
_UNIQUE_TEXT = frozenset({"request_id", "client_request_id", "key"})


def _writer_properties(schema: pa.Schema) -> Any:
    """Dictionary encoding for the text columns that repeat (variant, model, status, text
    features) only: built for numbers and ids, it cost a third of a commit's CPU (the
    writer's, on the cores the server shares) and made the files larger."""
    from deltalake import ColumnProperties, WriterProperties

    repeating = [
        field.name
        for field in schema
        if pa.types.is_string(field.type) and field.name not in _UNIQUE_TEXT
    ]
    return WriterProperties(
        compression="SNAPPY",  # deltalake writes uncompressed files when given properties
        default_column_properties=ColumnProperties(dictionary_enabled=False),
        column_properties={name: ColumnProperties(dictionary_enabled=True) for name in repeating},
    )


# What _Buffer keeps of each request (a Tag: "key" is a key, None, or _LISTED), and of
# each entry ("model": an index into _Buffer.models; its rows' latency in ms is
# (clock - start) * scale).
_REQUEST = ("request_id", "client_request_id", "key", "rows", "revision", "variant", "start")
_ENTRY = ("requests", "rows", "clock", "scale", "ts", "model", "role", "status", "error")
_LISTED = object()  # a request whose keys (one per row) wait in _Buffer.keys
_TAG = itemgetter(0)
_FLOAT_TYPES = frozenset({"double", "float"})
_DOUBLE = pa.float64()


class _Buffer:
    """The rows of one flush, kept column by column as they arrive.

    Whatever the buffer holds lives for a whole flush interval. Kept as one object per
    request (an entry, its dict of feature lists), thousands a second, it filled the
    garbage collector's oldest generation and made its full collections, 100-350 ms
    pauses of the event loop, frequent. Numbers and strings are not tracked by the
    collector, and nothing here is kept per entry in a container it tracks (a tuple is,
    until a collection looks at it: one per request made the collector run every few
    hundred requests, promoting the requests in flight to older generations), so this
    buffer costs it nothing.

    A micro-batch is taken in a few C calls, with no Python step per request (each step
    cost the event loop, which answers the requests, time: docs/benchmarks.md): its
    requests' tags go into one flat list as they are, and what is per batch (its answer
    time, model, output) once. Latencies are computed, and per-batch values spread over
    their rows, at the flush. Only a request of several rows with a key each takes a
    Python step: its keys move to a list of their own.

    The features of a model whose inputs are all floating point (most models) are kept
    as doubles in a "block" per model: the float64 matrix it scored (a micro-batch's, or
    ``LogEntry.inputs``), kept as it is (copied when it is a part of a larger matrix,
    which it would keep alive) and joined at the flush; or else the request's own
    values, copied row after row. No Python object per value outlives its request, and
    the flush builds their columns with NumPy instead of converting each value (that
    conversion was most of the flush thread's work under the GIL: 7.6 us a request, 3.5
    then; docs/benchmarks.md). Every other entry, and one whose values a double cannot
    hold (a missing input, a null, text), is kept in per-feature lists ("listed" rows).
    """

    def __init__(self) -> None:
        self.rows = 0
        self.requests: list[Any] = []  # per request, the _REQUEST values in turn (flat)
        self.entries: list[Any] = []  # per entry, the _ENTRY values in turn (flat)
        self.keys: list[str | None] = []  # the keys of _LISTED requests, in turn
        self.outputs: list[np.ndarray | None] = []  # per entry
        # name -> one value per listed row, None elsewhere (padded when a listed entry
        # comes, and at the flush: block entries never touch these lists)
        self.features: dict[str, list[Any]] = {}
        self.types: dict[str, pa.DataType] = {}
        self.listed = 0  # rows kept in the lists
        self.models: list[tuple[str | None, str, str | None]] = []  # name, version, run
        self._plans: dict[int, tuple] = {}  # id(predictor) -> how its columns are read
        self._blocks: list[_Block] = []

    def add(self, e: LogEntry) -> None:
        keys = e.keys
        key = keys[0] if keys is not None and e.n_rows == 1 else keys  # as route tags
        tag = (e.request_id, e.client_request_id, key, e.n_rows, e.revision, e.variant, 0.0)
        self.scored(e.predictor, ((tag,),), e.columns, e.n_rows, e.output, e.inputs,
                    clock=e.latency_ms, scale=1.0, ts=e.ts, role=e.role, status=e.status,
                    error=e.error)  # fmt: skip

    def scored(
        self,
        p: Any,
        tagged: Sequence[Sequence[Any]],
        columns: dict[str, Any],
        n: int,
        output: np.ndarray | None,
        inputs: np.ndarray | None,
        *,
        clock: float,
        ts: float,
        scale: float = 1000.0,
        role: str = "primary",
        status: str = "ok",
        error: str | None = None,
    ) -> None:
        """The ``n`` rows predictor ``p`` answered (or failed) for the ``tagged`` requests
        (each one's ``Tag`` first), in row order: ``columns``, ``output`` and ``inputs``
        hold all of them. ``clock``: when they were answered, on their tags' clock."""
        plan = self._plans.get(id(p))
        if plan is None or plan[0] is not p:
            plan = self._plan(p)
        _, model, names, pick, targets, block, scored = plan
        requests = self.requests
        first = len(requests)
        requests.extend(chain.from_iterable(map(_TAG, tagged)))
        count = (len(requests) - first) // len(_REQUEST)
        if count != n:  # a request of several rows (every tagged request has one or more)
            self._list_keys(first)
        self.entries.extend((count, n, clock, scale, ts, model, role, status, error))
        self.outputs.append(output)
        if scored is not None and inputs is not None and inputs.shape == (n, scored.width):
            scored.keep(self.rows, inputs)
        elif block is None or not block.add(self.rows, n, columns, pick):
            self._list(columns, n, names, pick, targets)
        self.rows += n

    def _list_keys(self, first: int) -> None:
        """The per-row keys of requests from ``first`` on to ``self.keys`` (a list kept
        in ``requests`` until the flush would be tracked by the garbage collector)."""
        requests = self.requests
        for i in range(first + _REQUEST.index("key"), len(requests), len(_REQUEST)):
            keys = requests[i]
            if type(keys) is list:
                self.keys.extend(keys)
                requests[i] = _LISTED

    def _list(self, columns: dict[str, Any], n: int, names, pick, targets) -> None:
        for target in self.features.values():  # rows since the last listed entry: null
            if len(target) < self.rows:
                target.extend([None] * (self.rows - len(target)))
        try:  # lists, or numpy arrays (numpy scalars): extended in one C-level loop
            deque(map(list.extend, targets, pick(columns)), maxlen=0)
        except (KeyError, TypeError):  # no inputs (a failed request), a column missing
            for name, target in zip(names, targets, strict=True):
                del target[self.rows :]
                values = columns.get(name)
                target.extend([None] * n if values is None else values)
        self.listed += n

    def _plan(self, predictor: Any) -> tuple:
        names = [c.name for c in predictor.input_columns]
        for column in predictor.input_columns:
            if column.name not in self.features:
                self.features[column.name] = []
                self.types[column.name] = _FEATURE_TYPES.get(column.type, pa.string())
        if not names:
            pick: Any = lambda columns: ()  # noqa: E731
        elif len(names) == 1:
            pick = lambda columns: (columns[names[0]],)  # noqa: E731
        else:
            pick = itemgetter(*names)
        block = None  # an all-double model's features, kept as doubles
        if names and all(c.type in _FLOAT_TYPES for c in predictor.input_columns):
            block = _Block(names)
            self._blocks.append(block)
        # The rows of the matrix an all-double model scored (LogEntry.inputs), in its
        # columns' order. (Not an integer model's: its doubles may have lost digits.)
        scored = None
        if block is not None and (order := predictor.matrix_columns) is not None:
            scored = block if list(order) == names else _Block(list(order))
            if scored is not block:
                self._blocks.append(scored)
        self.models.append(
            (predictor.model_name, str(predictor.model_version or ""), predictor.run_id)
        )
        targets = [self.features[name] for name in names]
        plan = (predictor, len(self.models) - 1, names, pick, targets, block, scored)
        self._plans[id(predictor)] = plan
        return plan

    def to_arrow(self, deployment: str) -> pa.Table:
        """The rows as one table (the schema in the module docstring)."""
        request = {name: self.requests[i :: len(_REQUEST)] for i, name in enumerate(_REQUEST)}
        entry = {name: self.entries[i :: len(_ENTRY)] for i, name in enumerate(_ENTRY)}
        # Each request's entry, and each row's request (None: one each, counted in C).
        counts, sizes = entry["requests"], request["rows"]
        request_entry = None
        if counts.count(1) != len(counts):
            request_entry = np.repeat(np.arange(len(counts)), counts)
        row_request = None
        if sizes.count(1) != len(sizes):
            row_request = np.repeat(np.arange(len(sizes)), sizes)
        if request_entry is None:
            row_entry = row_request
        elif row_request is None:
            row_entry = request_entry
        else:
            row_entry = request_entry[row_request]

        def per_request(values: Any, kind: pa.DataType) -> pa.Array:
            array = pa.array(values, kind)
            return array if row_request is None else array.take(row_request)

        def per_entry(values: Any, kind: pa.DataType) -> pa.Array:
            array = pa.array(values, kind)
            return array if row_entry is None else array.take(row_entry)

        clock, scale = np.array(entry["clock"], float), np.array(entry["scale"], float)
        if request_entry is not None:
            clock, scale = clock[request_entry], scale[request_entry]
        latency = (clock - np.array(request["start"], float)) * scale
        micros = (np.array(entry["ts"]) * 1e6).astype("int64")
        stamps = per_entry(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        arrays: dict[str, pa.Array] = {
            "request_id": per_request(request["request_id"], pa.string()),
            "client_request_id": per_request(request["client_request_id"], pa.string()),
            "ts": stamps,
            "date": pc.cast(stamps, pa.date32()),
            "deployment": pa.array([deployment] * self.rows, pa.string()),
            "revision": per_request(request["revision"], pa.int64()),
            "variant": per_request(request["variant"], pa.string()),
            "role": per_entry(entry["role"], pa.string()),
            **_model_columns(self.models, per_entry(entry["model"], pa.int64())),
            "key": self._key_column(request["key"], sizes, row_request is None),
            "latency_ms": per_request(latency, pa.float64()),
            "status": per_entry(entry["status"], pa.string()),
            "error": per_entry(entry["error"], pa.string()),
            "output": _outputs(self.outputs, entry["rows"]),
        }
        blocked = self._blocked()
        for name, kind in self.types.items():
            column = self._feature(name, kind, blocked)
            arrays[f"input_{name}" if name in _RESERVED else name] = column
        return pa.table(arrays)

    def _key_column(self, keys: list[Any], sizes: list[int], one_row_each: bool) -> pa.Array:
        """Each row's key: its request's one key (or None), or its own (_LISTED)."""
        if one_row_each and not self.keys:
            return pa.array(keys, pa.string())
        listed = iter(self.keys)
        rows: list[str | None] = []
        for key, n in zip(keys, sizes, strict=True):
            rows.extend(islice(listed, n) if key is _LISTED else [key] * n)
        return pa.array(rows, pa.string())

    def _blocked(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every block's features by name: (values, valid) over all rows, NaN and False
        where no block has the row (one scatter per block, not per feature)."""
        blocks = [block for block in self._blocks if block.rows or block.matrices]
        at = {name: i for i, name in enumerate(dict.fromkeys(n for b in blocks for n in b.index))}
        data = np.full((len(at), self.rows), np.nan)
        covered = np.zeros((len(blocks), self.rows), bool)  # the rows each block has
        for b, block in enumerate(blocks):
            features = [at[name] for name in block.index]
            # Every feature, in order: a plain scatter, a tenth of the time of np.ix_'s.
            whole = features == list(range(len(at)))
            values, index = block.joined()
            if whole:
                data[:, index] = values.T
            else:
                data[np.ix_(features, index)] = values.T
            covered[b, index] = True
        return {  # a feature's valid rows: those of the blocks that have it
            name: (data[i], covered[[name in b.index for b in blocks]].any(axis=0))
            for name, i in at.items()
        }

    def _feature(self, name: str, kind: pa.DataType, blocked: dict) -> pa.Array:
        """One feature's column: its block rows and its listed rows, null elsewhere."""
        listed = None
        if self.listed:
            values = self.features[name]
            values.extend([None] * (self.rows - len(values)))
            listed = _typed(values, kind)
        if name not in blocked:
            return listed if listed is not None else pa.nulls(self.rows, kind)
        data, valid = blocked[name]
        complete = bool(valid.all())
        column = pa.array(data, _DOUBLE) if complete else pa.array(data, _DOUBLE, mask=~valid)
        if listed is None:
            if kind == _DOUBLE:
                return column
            listed = pa.nulls(self.rows, kind)
        if listed.type != _DOUBLE:  # another model gave the feature another type
            column, listed = _alike(column, listed)
        return column if complete else pc.if_else(pa.array(valid), column, listed)


class _Block:
    """The feature rows of one all-double model, in ``index``'s order: ``values``
    holds one row of ``len(names)`` doubles per buffer row listed in ``rows``, and each
    of ``matrices`` (scored matrices, kept as they are) the rows from its ``firsts``
    entry on."""

    __slots__ = ("index", "width", "values", "rows", "matrices", "firsts")

    def __init__(self, names: list[str]) -> None:
        self.index = {name: j for j, name in enumerate(names)}
        self.width = len(names)
        self.values = array("d")
        self.rows = array("q")
        self.matrices: list[np.ndarray] = []
        self.firsts: list[int] = []

    def keep(self, first: int, matrix: np.ndarray) -> None:
        """Rows ``first`` on: ``matrix``'s (n, width) doubles, not copied unless it is a
        view of a larger array (it would keep that alive until the flush)."""
        base = matrix.base
        if base is not None and getattr(base, "nbytes", None) != matrix.nbytes:
            matrix = matrix.copy()
        self.matrices.append(matrix)
        self.firsts.append(first)

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """All the block's rows as one (rows, width) matrix, and their buffer rows."""
        values = [np.frombuffer(self.values, np.float64).reshape(len(self.rows), self.width)]
        index = [np.frombuffer(self.rows, np.int64)]
        if self.matrices:
            lengths = np.array([len(m) for m in self.matrices])
            ends = np.cumsum(lengths)
            # row i of the joined matrices is buffer row firsts[k] + (i - start of k)
            offsets = np.repeat(np.array(self.firsts) - (ends - lengths), lengths)
            values += self.matrices
            index.append(np.arange(ends[-1]) + offsets)
        return np.concatenate(values), np.concatenate(index)

    def add(self, first: int, n: int, columns: dict[str, Any], pick: Any) -> bool:
        """Rows ``first`` .. ``first + n - 1``; False (nothing kept) when a value is not
        a number, a column is missing or has the wrong length."""
        values = self.values
        start = len(values)
        try:
            picked = pick(columns)
            if n == 1:  # a one-value list per column (unpacking checks it): one C call
                values.fromlist([value for (value,) in picked])
                self.rows.append(first)
                return True
            values.extend(chain.from_iterable(zip(*picked, strict=True)))
        except (KeyError, TypeError, ValueError, OverflowError):
            del values[start:]
            return False
        if len(values) - start != n * self.width:  # a column of another length
            del values[start:]
            return False
        self.rows.extend(range(first, first + n))
        return True


def _model_columns(models: list[tuple], index: pa.Array) -> dict[str, pa.Array]:
    """Each row's model_name, model_version and run_id, from its index into ``models``."""
    names, versions, runs = zip(*models, strict=True) if models else ((), (), ())
    return {
        "model_name": pa.array(names, pa.string()).take(index),
        "model_version": pa.array(versions, pa.string()).take(index),
        "run_id": pa.array(runs, pa.string()).take(index),
    }


def _alike(blocked: pa.Array, listed: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Block values (doubles) and listed values of another type as one type: the listed
    one when it holds the doubles, else text (as ``str()`` writes each value)."""
    if not pa.types.is_string(listed.type):
        try:
            return blocked.cast(listed.type), listed
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            listed = _typed(listed.to_pylist(), pa.string())
    return _typed(blocked.to_pylist(), pa.string()), listed


def _typed(values: list[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as ``kind``, or as text when that type cannot hold them all."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _outputs(parts: list[np.ndarray | None], sizes: list[int]) -> pa.Array:
    """Numeric predictions as double, probability rows as list<double>, others as text."""
    try:  # the common case, every part a 1-D array of numbers: no question per part
        joined = np.concatenate(parts)  # a None, or parts of 1 and 2 dimensions, raise
    except (ValueError, TypeError):
        joined = None
    if joined is not None and joined.ndim == 1 and joined.dtype.kind in "biuf":
        return pa.array(joined.astype("float64", copy=False), pa.float64())
    present = [p for p in parts if p is not None]
    shapes = {p.ndim for p in present}
    numeric = all(p.dtype.kind in "biuf" for p in present)
    values: list[Any] = []
    for part, n in zip(parts, sizes, strict=True):
        values.extend([None] * n if part is None else part.tolist())
    if numeric and shapes == {2}:
        return pa.array(values, pa.list_(pa.float64()))
    if numeric and shapes <= {1}:
        return pa.array(values, pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())
