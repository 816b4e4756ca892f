"""Prometheus metrics in the text exposition format, without a client library.

Updating a metric is a dict lookup and an add: cheap enough for every request. Each
worker process keeps its own numbers; every sample carries a ``worker`` label (the
process id) so that scrapes of several workers can be told apart.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable, Sequence

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def samples(self) -> Iterable[str]:
        for key, value in list(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, key)} {value:g}"


class Gauge(Counter):
    kind = "gauge"

    def set(self, *labels: str, value: float) -> None:
        self._values[labels] = value

    def clear(self) -> None:
        self._values.clear()


class Histogram:
    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self.buckets = tuple(buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts..., +Inf, sum

    def observe(self, value: float, *labels: str) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return int(sum(series[:-1])) if series else 0

    def samples(self) -> Iterable[str]:
        for key, series in list(self._series.items()):
            cumulative = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                labels = _labels(self.label_names, key, f'le="{le}"')
                yield f"{self.name}_bucket{labels} {cumulative:g}"
            yield f"{self.name}_sum{_labels(self.label_names, key)} {series[-1]:.6g}"
            yield f"{self.name}_count{_labels(self.label_names, key)} {cumulative:g}"


_MODEL = ("model", "version", "backend")


class ServingMetrics:
    """Every metric the server exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.requests = Counter(
            "flowship_requests_total",
            "Prediction requests answered, by protocol and HTTP status.",
            (*_MODEL, "protocol", "status"),
        )
        self.errors = Counter(
            "flowship_request_errors_total",
            "Prediction requests that failed, by error class.",
            (*_MODEL, "protocol", "error"),
        )
        self.latency = Histogram(
            "flowship_request_duration_seconds",
            "Time from request received to response ready.",
            (*_MODEL, "protocol"),
            LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "flowship_batch_size_rows", "Rows per predict call.", _MODEL, BATCH_BUCKETS
        )
        self.queue_depth = Gauge("flowship_queue_depth", "Requests waiting for a predict call.", ())
        self.model_info = Gauge(
            "flowship_model_info", "The model version being served (value 1).", (*_MODEL, "ref")
        )
        self.load_failures = Counter(
            "flowship_model_load_failures_total",
            "Model versions that failed to load or warm up and were not switched to.",
            ("model", "version"),
        )
        self.switches = Counter(
            "flowship_model_switches_total", "Switches to a newly resolved version.", ("model",)
        )
        self._lock = threading.Lock()
        self._more: list[Counter | Histogram] = []  # registered by optional parts (router)

    def register(self, metric: Counter | Histogram) -> Counter | Histogram:
        self._more.append(metric)
        return metric

    def all(self) -> list[Counter | Histogram]:
        return [
            self.requests,
            self.errors,
            self.latency,
            self.batch_size,
            self.queue_depth,
            self.model_info,
            self.load_failures,
            self.switches,
            *self._more,
        ]

    def render(self) -> str:
        worker = f'worker="{os.getpid()}"'
        lines: list[str] = []
        with self._lock:
            for metric in self.all():
                lines.append(f"# HELP {metric.name} {metric.help}")
                lines.append(f"# TYPE {metric.name} {metric.kind}")
                for sample in metric.samples():
                    name, _, value = sample.rpartition(" ")
                    if name.endswith("}"):
                        name = f"{name[:-1]},{worker}}}"
                    else:
                        name = f"{name}{{{worker}}}"
                    lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"
