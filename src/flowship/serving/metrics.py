"""Prometheus metrics, through prometheus_client, aggregated across worker processes.

With ``--workers N`` every worker writes its numbers to memory-mapped files in one
directory (prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set up
by ``server.serve`` before the workers start), and a scrape of any worker reads them
all: counters and histograms are summed, the queue depth is summed over live workers,
and ``flowship_model_info`` keeps one sample per live worker (``pid`` label), since
workers may serve different versions for up to one poll interval. A single process keeps
its numbers in memory. Values are printed exactly (``repr`` of the float), not rounded.

The per-request cost is a dict lookup (children are cached per label tuple) and an add
under a lock; in multiprocess mode the add also writes 8 bytes to the mapped file.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


disable_created_metrics()  # no *_created samples: one line per number is enough


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class _Family:
    """A labelled metric with its children cached by label values (the hot path)."""

    def __init__(self, metric: Any, labelled: bool) -> None:
        self._metric = metric
        self._labelled = labelled
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, labels: tuple[str, ...]) -> Any:
        found = self._children.get(labels)
        if found is None:
            found = self._metric.labels(*labels) if self._labelled else self._metric
            self._children[labels] = found
        return found


class Counter(_Family):
    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.child(labels).inc(amount)

    def value(self, *labels: str) -> float:
        return self.child(labels)._value.get()


class Gauge(_Family):
    def set(self, *labels: str, value: float) -> None:
        self.child(labels).set(value)

    def clear(self) -> None:
        """Forget every labelled sample. In multiprocess mode a sample's file entry
        outlives it, so it is set to 0 first: a replaced version reads 0, not 1."""
        for child in self._children.values():
            child.set(0)
        self._children.clear()
        if self._labelled:
            self._metric.clear()


class Histogram(_Family):
    def observe(self, value: float, *labels: str) -> None:
        self.child(labels).observe(value)

    def count(self, *labels: str) -> int:
        child = self.child(labels)
        return int(sum(bucket.get() for bucket in child._buckets))


_MODEL = ("model", "version", "backend")


class ServingMetrics:
    """Every metric the server exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            _Counter(
                "flowship_requests",
                "Prediction requests answered, by protocol and HTTP status.",
                (*_MODEL, "protocol", "status"),
                registry=r,
            ),
            True,
        )
        self.errors = Counter(
            _Counter(
                "flowship_request_errors",
                "Prediction requests that failed, by error class.",
                (*_MODEL, "protocol", "error"),
                registry=r,
            ),
            True,
        )
        self.latency = Histogram(
            _Histogram(
                "flowship_request_duration_seconds",
                "Time from request received to response ready.",
                (*_MODEL, "protocol"),
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            True,
        )
        self.batch_size = Histogram(
            _Histogram(
                "flowship_batch_size_rows",
                "Rows per predict call.",
                _MODEL,
                buckets=BATCH_BUCKETS,
                registry=r,
            ),
            True,
        )
        self.queue_depth = Gauge(
            _Gauge(
                "flowship_queue_depth",
                "Requests waiting for a predict call.",
                multiprocess_mode="livesum",
                registry=r,
            ),
            False,
        )
        self.model_info = Gauge(
            _Gauge(
                "flowship_model_info",
                "The model version being served (value 1).",
                (*_MODEL, "ref"),
                multiprocess_mode="liveall",
                registry=r,
            ),
            True,
        )
        self.load_failures = Counter(
            _Counter(
                "flowship_model_load_failures",
                "Model versions that failed to load or warm up and were not switched to.",
                ("model", "version"),
                registry=r,
            ),
            True,
        )
        self.switches = Counter(
            _Counter(
                "flowship_model_switches",
                "Switches to a newly resolved version.",
                ("model",),
                registry=r,
            ),
            True,
        )
        self.follow_errors = Counter(
            _Counter(
                "flowship_follow_errors",
                "Unexpected errors of the loop that follows the ref (each is retried).",
                registry=r,
            ),
            False,
        )

    def render(self) -> bytes:
        """The whole server's metrics (every worker's, in multiprocess mode)."""
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
