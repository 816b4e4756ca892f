"""What the deployment router's per-variant metrics of one request cost, in microseconds.

A request answered by one variant adds its rows and one request to two counters and its
latency to a histogram (``flowship_variant_*``, read by the rollout's server_* guardrails).
``direct`` updates prometheus_client each time; ``tally`` makes the router's one call,
``LoopTally.answered``: counters written once per event-loop turn (here: 16 requests a
turn), the histogram once per request.

    .venv/bin/python benchmarks/variant_metrics_cost.py
"""

from __future__ import annotations

import asyncio
import time

from flowship.serving.metrics import ServingMetrics

PER_TURN, TURNS = 16, 20_000
LABELS = ("churn", "champion")


def main() -> None:
    m = ServingMetrics()
    variants = m.variants()

    def direct() -> None:
        variants.rows.inc(*LABELS, amount=1)
        variants.requests.inc(*LABELS, "ok")
        variants.latency.observe(0.0003, *LABELS)

    def tallied() -> None:
        m.tally.answered(LABELS, 1, 0.0003)

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
