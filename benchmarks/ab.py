"""A/B report benchmark: is the test honest under daily peeking, how much power does it
have, and does a report over 10 million logged rows and 10 million outcomes stay in
bounded memory?

1. Simulation (seeded): many A/A experiments (no true difference) and A/B experiments
   (a real uplift), each read every day for 30 days. Printed: the share of experiments
   ever declared significant by flowship's always-valid test and, as the peer, by the
   fixed-horizon z-test that "compare performance after collecting enough data" means in
   practice, read on the same days.
2. Scale: a prediction log with the deployments' schema (Delta, partitioned by date) of
   ``--rows`` requests and as many outcomes, then ``flowship ab report`` in a child
   process; printed: wall time and the child's peak resident memory (ru_maxrss).

    .venv/bin/python benchmarks/ab.py                       # both, 10M rows
    .venv/bin/python benchmarks/ab.py --rows 1000000 --experiments 2000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


def simulation(experiments: int) -> None:
    from flowship.monitoring.experiments.simulate import daily_conversion

    def ci(rate: float) -> str:
        half = 1.96 * math.sqrt(max(rate * (1 - rate), 1e-12) / experiments)
        return f"{rate:6.2%} ± {half:.2%}"

    print(f"\nDaily peeking, {experiments:,} experiments each, 30 daily looks, alpha 5%")
    print(f"{'scenario':<46} {'flowship (always valid)':>24} {'z-test read daily':>20}")
    cases = [
        ("A/A: 20% vs 20%, 400 units/day, 50/50", 400, 0.0, 0.5),
        ("A/A: 20% vs 20%, 4,000 units/day, 90/10", 4000, 0.0, 0.1),
        ("uplift: 20% -> 22%, 1,000 units/day, 50/50", 1000, 0.02, 0.5),
        ("uplift: 20% -> 21%, 4,000 units/day, 50/50", 4000, 0.01, 0.5),
        ("uplift: 20% -> 22%, 4,000 units/day, 90/10", 4000, 0.02, 0.1),
    ]
    for name, per_day, uplift, share in cases:
        r = daily_conversion(
            experiments=experiments,
            days=30,
            units_per_day=per_day,
            base_rate=0.2,
            uplift=uplift,
            share=share,
            seed=2026,
        )
        day = f" (median day {r.median_day:.0f})" if r.median_day and uplift else ""
        print(f"{name:<46} {ci(r.sequential_rate):>24} {ci(r.naive_rate):>20}{day}")


def write_data(root: Path, rows: int, chunk: int = 1_000_000) -> tuple[str, str]:
    """``rows`` requests from ``rows`` distinct keys (the worst case for per-key memory),
    90/10 split, over 60 days; one outcome per key."""
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    log_path, act_path = root / "prediction_log", root / "actuals.parquet"
    rng = np.random.default_rng(0)
    writer = None
    start = AS_OF - timedelta(days=60)
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        ids = np.arange(lo, lo + n)
        keys = pc.utf8_lpad(pa.array(ids).cast(pa.string()), 10, "0")
        signal = rng.normal(0, 1.2, n)
        truth = 1 / (1 + np.exp(-(signal - 1.0)))
        variant = np.where(rng.random(n) < 0.9, "champion", "challenger")
        noise = rng.normal(0, np.where(variant == "challenger", 0.8, 1.0))
        score = 1 / (1 + np.exp(-(signal - 1.0 + noise)))
        offsets = (rng.random(n) * 60 * 86400).astype("timedelta64[s]")
        ts = np.datetime64(start.replace(tzinfo=None), "s") + offsets
        table = pa.table(
            {
                "request_id": pa.array(ids).cast(pa.string()),
                "client_request_id": pa.nulls(n, pa.string()),
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "deployment": pa.array(["churn"] * n),
                "revision": pa.array(np.ones(n, dtype=np.int64)),
                "variant": pa.array(variant),
                "role": pa.array(["primary"] * n),
                "model_name": pa.array(["Churn"] * n),
                "model_version": pa.array(np.where(variant == "champion", "1", "2")),
                "run_id": pa.array(["r" * 32] * n),
                "key": keys,
                **{f"f{i}": pa.array(rng.normal(size=n)) for i in range(5)},
                "prediction": pa.array((score >= 0.5).astype(np.int64)),
                "probability": pa.array(score),
                "latency_ms": pa.array(rng.gamma(2.0, 2.0, n)),
                "status": pa.array(["ok"] * n),
                "date": pa.array(ts.astype("datetime64[D]").astype(str)),
            }
        )
        write_deltalake(str(log_path), table, partition_by=["date"], mode="append")
        outcomes = pa.table(
            {"customer_id": keys, "churned": pa.array((rng.random(n) < truth).astype(np.int64))}
        )
        if writer is None:
            writer = pq.ParquetWriter(act_path, outcomes.schema)
        writer.write_table(outcomes)
        print(f"  wrote {lo + n:,} rows", file=sys.stderr)
    writer.close()
    return str(log_path), str(act_path)


CHILD = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall_s": elapsed, "peak_rss_mb": peak, "code": done.returncode,
                  "stdout": done.stdout, "stderr": done.stderr[-2000:]}))
"""


def scale(rows: int, metrics: list[str], keep: Path | None) -> None:
    root = keep or Path(tempfile.mkdtemp(prefix="flowship-ab-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "prediction_log" / "_delta_log").exists():
        t = time.perf_counter()
        log, actuals = write_data(root, rows)
        print(f"  data written in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    else:
        log, actuals = str(root / "prediction_log"), str(root / "actuals.parquet")
    flowship = str(Path(sys.executable).with_name("flowship"))
    print(f"\n`flowship ab report` over {rows:,} logged rows and {rows:,} outcomes")
    print(f"{'metric':<10} {'wall s':>8} {'peak RSS MB':>12}  decision")
    for metric in metrics:
        cmd = [
            flowship, "ab", "report", "churn", "--log", log, "--actuals", actuals,
            "--id", "customer_id", "--label", "churned", "--metric", metric,
            "--weights", "champion=90,challenger=10", "--as-of", AS_OF.isoformat(), "--json",
        ]  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True
        )
        m = json.loads(out.stdout)
        if m["code"] not in (0, 1):
            raise SystemExit(f"flowship failed: {m['stderr']}")
        report = json.loads(m["stdout"])
        print(f"{metric:<10} {m['wall_s']:>8.1f} {m['peak_rss_mb']:>12,.0f}  {report['summary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--metrics", default="auc,mean")
    parser.add_argument("--data", type=Path, help="Keep (and reuse) the data in this folder.")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if not args.skip_simulation:
        simulation(args.experiments)
    if not args.skip_scale:
        scale(args.rows, args.metrics.split(","), args.data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(this process: peak {peak:,.0f} MB)")


if __name__ == "__main__":
    main()
