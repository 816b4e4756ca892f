"""What the metric updates of one served request cost, in microseconds.

One request updates the queue depth twice, observes the latency and counts its status;
the batch size is observed once per predict call. Under load a loop turn answers a
micro-batch of requests, so the tally (where the tree has one) is flushed every 8
requests, as at concurrency 8. Run it against two source trees to compare:

    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/metrics_cost.py before
    .venv/bin/python benchmarks/metrics_cost.py after
"""

from __future__ import annotations

import asyncio
import sys
import timeit

from flowship.serving.metrics import ServingMetrics


def main() -> None:
    metrics = ServingMetrics()
    labels = ("lr", "1", "onnx")

    tally = getattr(metrics, "tally", None)  # trees before the per-turn tally have none

    def eight_requests() -> None:
        metrics.batch_size.observe(8, *labels)
        for _ in range(8):
            if tally is None:
                metrics.queue_depth.set(value=1)
                metrics.queue_depth.set(value=0)
                metrics.requests.inc(*labels, "mlflow", "200")
                metrics.latency.observe(0.0003, *labels, "mlflow")
            else:
                tally.queue_depth(1)
                tally.queue_depth(0)
                tally.request(labels, "mlflow", 200, 0.0003)
        if tally is not None:
            tally.flush()

    async def measure() -> float:  # on a running loop, where the tally schedules its flush
        n = 25_000
        return min(timeit.repeat(eight_requests, number=n, repeat=5)) / (8 * n)

    best = asyncio.run(measure())
    name = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    print(f"{name}: {best * 1e6:.2f} us per request's metric updates")


if __name__ == "__main__":
    main()
