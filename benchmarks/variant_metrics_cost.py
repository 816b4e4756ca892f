"""What the metrics of one request a deployment answered cost, in microseconds.

A request answered by one variant counts its status and observes its latency for the
served model (``flowship_requests_total``, ``flowship_request_duration_seconds``), and
adds its rows and one request to two counters and its latency to a histogram for the
variant (``flowship_variant_*``, read by the rollout's server_* guardrails).
``direct`` updates prometheus_client each time; ``tally`` makes the router's one call,
``LoopTally.routed``: the updates are gathered and written once per flush of the tally
(here: every ``FLUSH_S``, 16 requests a loop turn).

    .venv/bin/python benchmarks/variant_metrics_cost.py [--turns 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from flowship.serving.metrics import ServingMetrics
from flowship.serving.router import _Answer

PER_TURN = 16
MODEL = ("lr", "1", "linear")
LABELS = ("churn", "champion")
# What the router caches per (revision, answering variants, versions); only its labels
# are read here.
ANSWER = _Answer(("champion",), (None,), (), (LABELS,), MODEL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20_000, help="loop turns per run")
    turns = parser.parse_args().turns
    m = ServingMetrics()
    variants = m.variants()

    def direct() -> None:
        m.requests.inc(*MODEL, "mlflow", "200")
        m.latency.observe(0.0003, *MODEL, "mlflow")
        variants.rows.inc(*LABELS, amount=1)
        variants.requests.inc(*LABELS, "ok")
        variants.latency.observe(0.0003, *LABELS)

    def tallied() -> None:
        m.tally.routed(ANSWER, (1,), "mlflow", 0.0003)

    async def per_request(one) -> float:
        start = time.perf_counter()
        for _ in range(turns):
            for _ in range(PER_TURN):
                one()
            await asyncio.sleep(0)  # the loop turn ends (the tally writes when it is due)
        m.tally.flush()  # what is left is written too, and counted
        return (time.perf_counter() - start) / (turns * PER_TURN) * 1e6

    for name, one in (("direct", direct), ("tally", tallied)) * 2:
        best = min(asyncio.run(per_request(one)) for _ in range(3))
        print(f"{name:<7} {best:.2f} us per request (best of 3)")


if __name__ == "__main__":
    main()
