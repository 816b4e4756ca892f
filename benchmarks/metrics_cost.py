"""What the metric updates of one served request cost, in microseconds.

One request updates the queue depth twice, observes the batch size and the latency and
increments the request counter. Run it against two source trees to compare:

    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/metrics_cost.py before
    .venv/bin/python benchmarks/metrics_cost.py after
"""

from __future__ import annotations

import sys
import timeit

from flowship.serving.metrics import ServingMetrics


def main() -> None:
    metrics = ServingMetrics()
    labels = ("lr", "1", "onnx")

    def one_request() -> None:
        metrics.queue_depth.set(value=1)
        metrics.queue_depth.set(value=0)
        metrics.batch_size.observe(1, *labels)
        metrics.requests.inc(*labels, "mlflow", "200")
        metrics.latency.observe(0.0003, *labels, "mlflow")

    n = 200_000
    best = min(timeit.repeat(one_request, number=n, repeat=5)) / n
    name = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    print(f"{name}: {best * 1e6:.2f} us per request's metric updates")


if __name__ == "__main__":
    main()
