"""Prometheus metrics, through prometheus_client, aggregated across worker processes.

With ``--workers N`` every worker writes its numbers to memory-mapped files in one
directory (prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set up
by ``server.serve`` before the workers start), and a scrape of any worker reads them
all: counters and histograms are summed, the queue depth is summed over live workers,
and ``flowship_model_info`` keeps one sample per live worker (``pid`` label), since
workers may serve different versions for up to one poll interval. A single process keeps
its numbers in memory. Values are printed exactly (``repr`` of the float), not rounded.

The hot path (a request's status and latency, the queue depth, each predict call's rows)
goes through :class:`LoopTally`: a request only adds to plain counters, and the tally
writes them to the metrics at most every 10 ms (``FLUSH_S``), with every request
answered since. prometheus_client takes a lock (and, in multiprocess mode, writes a
mapped file) on every update: five updates a request cost about 5 us of the 40 us a
single-row request spends in the app. Writing once per turn of the event loop was not
enough: under load a turn answers one or two requests; once a millisecond, the writes
still took 2% of a server's time, 3.5% with a deployment's per-variant metrics.
Counters, the gauge and the histograms (latency, the deployment router's per variant,
batch size) are written once per flush, one update per bucket used
(:meth:`Histogram.observe_many`). A scrape flushes its own worker's tally first, so it
is always exact for that worker.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
# The tally's flush delay: metrics may lag answers by this long (another worker's: a
# scrape flushes its own worker first), and a server at full load writes them a hundred
# times a second instead of once or twice a request.
FLUSH_S = 0.01
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


disable_created_metrics()  # no *_created samples: one line per number is enough


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class _Family:
    """A labelled metric with its children cached by label values (the hot path)."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._labelled = bool(metric._labelnames)
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, labels: tuple[str, ...]) -> Any:
        found = self._children.get(labels)
        if found is None:
            found = self.metric.labels(*labels) if self._labelled else self.metric
            self._children[labels] = found
        return found


class Counter(_Family):
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(_Counter(name, help, tuple(labels), registry=None))

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.child(labels).inc(amount)

    def value(self, *labels: str) -> float:
        return self.child(labels)._value.get()


class Gauge(_Family):
    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), *, mode: str = "liveall"
    ) -> None:
        """``mode``: how workers' values combine in multiprocess mode (prometheus_client's
        ``multiprocess_mode``); the default keeps one sample per live worker."""
        gauge = _Gauge(name, help, tuple(labels), registry=None, multiprocess_mode=mode)
        super().__init__(gauge)

    def set(self, *labels: str, value: float) -> None:
        self.child(labels).set(value)

    def value(self, *labels: str) -> float:
        return self.child(labels)._value.get()

    def clear(self) -> None:
        """Forget every labelled sample. In multiprocess mode a sample's file entry
        outlives it, so it is set to 0 first: a replaced version reads 0, not 1."""
        for child in self._children.values():
            child.set(0)
        self._children.clear()
        if self._labelled:
            self.metric.clear()


class Histogram(_Family):
    def __init__(
        self, name: str, help: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(_Histogram(name, help, tuple(labels), buckets=buckets, registry=None))

    def observe(self, value: float, *labels: str) -> None:
        self.child(labels).observe(value)

    def observe_many(
        self,
        values: Sequence[float],
        labels: tuple[str, ...],
        *also: tuple[Histogram, tuple[str, ...]],
    ) -> None:
        """``observe`` for each of ``values``, in one update per bucket used instead of
        two locked updates per value; ``also``: other (histogram, labels) with the same
        buckets that observe the same values (bucketed once: a deployment's request and
        per-variant latencies). prometheus_client has no public way to do this, so it
        writes each child's ``_buckets`` and ``_sum`` (non-cumulative bucket counts, a
        value going to the first bound not below it, as ``observe`` does); the tripwire
        test in tests/serving/test_units.py fails if those insides change."""
        children = [self.child(labels), *(histogram.child(more) for histogram, more in also)]
        bounds = children[0]._upper_bounds
        counts = [0] * len(bounds)
        for value in values:
            counts[bisect_left(bounds, value)] += 1
        total = sum(values)
        for child in children:
            child._sum.inc(total)
            for i, count in enumerate(counts):
                if count:
                    child._buckets[i].inc(count)

    def count(self, *labels: str) -> int:
        child = self.child(labels)
        return int(sum(bucket.get() for bucket in child._buckets))


F = TypeVar("F", bound=_Family)
_MODEL = ("model", "version", "backend")


class ServingMetrics:
    """Every metric the server exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = self.register(
            Counter(
                "flowship_requests_total",
                "Prediction requests answered, by protocol and HTTP status.",
                (*_MODEL, "protocol", "status"),
            )
        )
        self.errors = self.register(
            Counter(
                "flowship_request_errors_total",
                "Prediction requests that failed, by error class.",
                (*_MODEL, "protocol", "error"),
            )
        )
        self.latency = self.register(
            Histogram(
                "flowship_request_duration_seconds",
                "Time from request received to response ready.",
                (*_MODEL, "protocol"),
                LATENCY_BUCKETS,
            )
        )
        self.batch_size = self.register(
            Histogram("flowship_batch_size_rows", "Rows per predict call.", _MODEL, BATCH_BUCKETS)
        )
        self.queue_depth = self.register(
            Gauge("flowship_queue_depth", "Requests waiting for a predict call.", mode="livesum")
        )
        self.model_info = self.register(
            Gauge(
                "flowship_model_info",
                "The model version being served (value 1).",
                (*_MODEL, "ref"),
            )
        )
        self.load_failures = self.register(
            Counter(
                "flowship_model_load_failures_total",
                "Model versions that failed to load or warm up and were not switched to.",
                ("model", "version"),
            )
        )
        self.switches = self.register(
            Counter(
                "flowship_model_switches_total",
                "Switches to a newly resolved version.",
                ("model",),
            )
        )
        self.follow_errors = self.register(
            Counter(
                "flowship_follow_errors_total",
                "Unexpected errors of the loop that follows the ref (each is retried).",
            )
        )

        self.tally = LoopTally(self)
        self._variants: VariantMetrics | None = None

    def variants(self) -> VariantMetrics:
        """The per-variant metrics, registered by the first deployment router that asks
        (a plain server does not show them)."""
        if self._variants is None:
            self._variants = VariantMetrics(self)
        return self._variants

    def register(self, family: F) -> F:
        """Expose ``family`` on /metrics (optional parts, such as the router, add theirs)."""
        self.registry.register(family.metric)
        return family

    def render(self) -> bytes:
        """The whole server's metrics (every worker's, in multiprocess mode)."""
        self.tally.flush()
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry(auto_describe=False)
            mp.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def worker_exited(pid: int | None = None) -> None:
        """Drop a stopped worker's live gauges (queue depth, model info)."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(pid or os.getpid())


class VariantMetrics:
    """A deployment's answers per primary variant (``LoopTally.routed``), which the
    rollout's ``server_*`` guardrails read (``flowship.rollout.servers``): a request whose
    rows two variants answered counts once for each."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.rows = metrics.register(
            Counter(
                "flowship_variant_rows_total",
                "Rows answered by each primary variant.",
                ("deployment", "variant"),
            )
        )
        self.requests = metrics.register(
            Counter(
                "flowship_variant_requests_total",
                "Requests answered (outcome ok) or failed (error) by each primary variant.",
                ("deployment", "variant", "outcome"),
            )
        )
        self.latency = metrics.register(
            Histogram(
                "flowship_variant_request_duration_seconds",
                "Time from request received to answer, per primary variant (answered only).",
                ("deployment", "variant"),
                LATENCY_BUCKETS,
            )
        )


class LoopTally:
    """Counts, observations and the queue depth, gathered on the event loop thread and
    written to the metrics ``FLUSH_S`` after the first of them (see the module
    docstring): the request counts and latencies of every server, its batch sizes, and
    the deployment router's per-variant counts and latencies."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self._metrics = metrics
        self._requests: dict[tuple[str, ...], int] = {}
        self._latencies: dict[tuple[str, ...], list[float]] = {}
        self._counts: dict[tuple[Counter, tuple[str, ...]], float] = {}
        self._routed: dict[tuple[Any, str], list] = {}  # (router's answer, protocol) ->
        self._batches: dict[Any, list[int]] = {}  # predictor -> rows per predict call
        self._waiting = 0  # requests in every batcher's queue (a deployment has several)
        self._depth_changed = False
        self._scheduled = False

    def request(self, labels: tuple[str, str, str], protocol: str, status: int, seconds: float):
        # Every request of every server comes here: flat keys, no generic lookups (a
        # microsecond a request less than count + observe).
        key = (*labels, protocol)
        counted = (*key, str(status))
        self._requests[counted] = self._requests.get(counted, 0) + 1
        latencies = self._latencies.get(key)
        if latencies is None:
            self._latencies[key] = [seconds]
        else:
            latencies.append(seconds)
        if not self._scheduled:
            self._schedule()

    def count(self, counter: Counter, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0.0) + amount
        if not self._scheduled:
            self._schedule()

    def routed(self, answer: Any, rows: Sequence[int], protocol: str, seconds: float) -> None:
        """A deployment's request answered (200) by ``answer``'s variants, ``rows[i]`` rows
        by the i-th: one call for the request metrics and the three per-variant ones
        (:class:`VariantMetrics`), keyed by the answer object (cached by the router, so
        the key is hashed by identity and the labels are expanded once a flush)."""
        key = (answer, protocol)
        entry = self._routed.get(key)
        if entry is None:
            self._routed[key] = [1, list(rows), [seconds]]
        else:
            entry[0] += 1
            counts = entry[1]
            for i, n in enumerate(rows):
                counts[i] += n
            entry[2].append(seconds)
        if not self._scheduled:
            self._schedule()

    def batches(self, predictor: Any, rows: list[int]) -> None:
        """The rows of each predict call ``predictor`` made (the batch-size histogram)."""
        calls = self._batches.get(predictor)
        if calls is None:
            self._batches[predictor] = rows
        else:
            calls.extend(rows)
        if not self._scheduled:
            self._schedule()

    def queue(self, change: int) -> None:
        """Requests joined (+) or left (-) a batcher's queue; the gauge shows the sum."""
        self._waiting += change
        self._depth_changed = True
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the server's loop (a test, a script)
            self.flush()
            return
        self._scheduled = True
        loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        requests, self._requests = self._requests, {}
        latencies, self._latencies = self._latencies, {}
        counts, self._counts = self._counts, {}
        routed, self._routed = self._routed, {}
        batches, self._batches = self._batches, {}
        depth_changed, self._depth_changed = self._depth_changed, False
        metrics = self._metrics
        for labels, count in requests.items():
            metrics.requests.inc(*labels, amount=count)
        for labels, values in latencies.items():
            metrics.latency.observe_many(values, labels)
        for (counter, labels), amount in counts.items():
            counter.inc(*labels, amount=amount)
        if routed:
            variants = metrics.variants()
            for (answer, protocol), (count, rows, values) in routed.items():
                labels = (*answer.model_labels, protocol)
                metrics.requests.inc(*labels, "200", amount=count)
                also = [(variants.latency, variant) for variant in answer.labels]
                metrics.latency.observe_many(values, labels, *also)
                for variant, n in zip(answer.labels, rows, strict=True):
                    variants.rows.inc(*variant, amount=n)
                    variants.requests.inc(*variant, "ok", amount=count)
        for predictor, rows in batches.items():
            labels = (
                predictor.model_name or "",
                str(predictor.model_version or ""),
                predictor.backend,
            )
            metrics.batch_size.observe_many(rows, labels)
        if depth_changed:
            metrics.queue_depth.set(value=self._waiting)
