"""What the deployment router's per-variant metrics of one request cost, in microseconds.

A request answered by one variant adds its rows and one request to two counters and its
latency to a histogram (``flowship_variant_*``, read by the rollout's server_* guardrails).
``direct`` updates prometheus_client each time; ``tally`` goes through ``LoopTally``, as
the router does: counters written once per event-loop turn (here: 16 requests a turn).

    .venv/bin/python benchmarks/variant_metrics_cost.py
"""

from __future__ import annotations

import asyncio
import time

from flowship.serving.metrics import LATENCY_BUCKETS, Counter, Histogram, ServingMetrics

PER_TURN, TURNS = 16, 20_000


def main() -> None:
    m = ServingMetrics()
    rows = m.register(Counter("flowship_variant_rows_total", "x", ("deployment", "variant")))
    requests = m.register(
        Counter("flowship_variant_requests_total", "x", ("deployment", "variant", "outcome"))
    )
    latency = m.register(
        Histogram(
            "flowship_variant_request_duration_seconds",
            "x",
            ("deployment", "variant"),
            LATENCY_BUCKETS,
        )
    )

    def direct() -> None:
        rows.inc("churn", "champion", amount=1)
        requests.inc("churn", "champion", "ok")
        latency.observe(0.0003, "churn", "champion")

    def tallied() -> None:
        tally = m.tally
        tally.count(rows, ("churn", "champion"), 1)
        tally.count(requests, ("churn", "champion", "ok"))
        tally.observe(latency, ("churn", "champion"), 0.0003)

    async def per_request(one) -> float:
        start = time.perf_counter()
        for _ in range(TURNS):
            for _ in range(PER_TURN):
                one()
            await asyncio.sleep(0)  # the loop turn ends: the tally writes
        return (time.perf_counter() - start) / (TURNS * PER_TURN) * 1e6

    for name, one in (("direct", direct), ("tally", tallied)) * 2:
        best = min(asyncio.run(per_request(one)) for _ in range(3))
        print(f"{name:<7} {best:.2f} us per request (best of 3)")


if __name__ == "__main__":
    main()
