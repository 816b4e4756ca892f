"""What the metric updates of one served request cost, in microseconds.

One request joins and leaves a batcher's queue (the queue depth), counts its status
and observes its latency; the batch size is observed once per predict call. Under load
a loop turn answers a micro-batch of requests, so the tally (where the tree has one) is
flushed every 8 requests, as at concurrency 8. Run it against two source trees to
compare:

    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/metrics_cost.py before
    .venv/bin/python benchmarks/metrics_cost.py after [--number 25000]
"""

from __future__ import annotations

import argparse
import asyncio
import timeit

from flowship.serving.metrics import ServingMetrics


class _Predictor:  # what the tally reads of a Predictor (hashed by identity, as one is)
    model_name, model_version, backend = "lr", "1", "linear"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="this tree", help="printed with the result")
    parser.add_argument("--number", type=int, default=25_000, help="batches of 8 per repeat")
    args = parser.parse_args()
    metrics = ServingMetrics()
    labels = ("lr", "1", "linear")
    predictor = _Predictor()

    tally = getattr(metrics, "tally", None)  # trees before the per-turn tally have none

    def eight_requests() -> None:
        if tally is None:
            metrics.batch_size.observe(8, *labels)
            for _ in range(8):
                metrics.queue_depth.set(value=1)
                metrics.queue_depth.set(value=0)
                metrics.requests.inc(*labels, "mlflow", "200")
                metrics.latency.observe(0.0003, *labels, "mlflow")
            return
        tally.batches(predictor, [8])
        for _ in range(8):
            tally.queue(1)
            tally.queue(-1)
            tally.request(labels, "mlflow", 200, 0.0003)
        tally.flush()

    async def measure() -> float:  # on a running loop, where the tally schedules its flush
        return min(timeit.repeat(eight_requests, number=args.number, repeat=5)) / (8 * args.number)

    best = asyncio.run(measure())
    print(f"{args.name}: {best * 1e6:.2f} us per request's metric updates")


if __name__ == "__main__":
    main()
