"""Batch scoring: flowship score (local engine) against the seed's own approach.

The seed approach (the user's course chapter): pandas reads the whole Parquet file,
``mlflow.pyfunc.load_model(...).predict`` scores the feature frame, two columns are
added and pandas writes the result. flowship: ``flowship score`` streaming the same
file into a Delta table. Both score the same rows with the same registered model; each
runs in its own process so peak RSS is measured per approach.

    .venv/bin/python benchmarks/batch.py --rows 1000000 10000000 --models lr rf

Prints, for every (model, size): wall time and rows/s end to end (process start, model
load, read, score, write, exit), the seed's model load time, flowship's run time from its
run record, peak RSS, and the speed ratio. Before the timed runs, flowship scores a
10,000-row file once per model, as a scheduled job has from its second run on: the first
run of a version converts it (ONNX, compiled forest) and records the load; that first
run's wall time is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _isolate import isolate

FEATURES = ["age", "tenure_months", "recency_days", "frequency", "monetary_total"]

SEED = f"""
import sys, time, json
start = time.perf_counter()
import datetime, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
loaded = time.perf_counter()
frame = pd.read_parquet(sys.argv[2])
feature_columns = {FEATURES!r}
predictions = model.predict(frame[feature_columns])
frame["churn_prediction"] = predictions
frame["prediction_date"] = datetime.datetime.now()
frame[["customer_id", "churn_prediction", "prediction_date"]].to_parquet(sys.argv[3])
done = time.perf_counter()
print(json.dumps({{"load_s": loaded - start, "work_s": done - loaded, "rows": len(frame)}}))
"""

MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - start
if done.returncode:
    sys.stderr.write(done.stderr[-3000:])
    sys.exit(done.returncode)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall_s": elapsed, "peak_rss_mb": peak, "stdout": done.stdout}))
"""


def measure(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall seconds, peak RSS (MB) and stdout of ``command``, run from a fresh helper
    process so RUSAGE_CHILDREN sees only this one child."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_seed(uri: str, data: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    m = measure([sys.executable, "-c", SEED, uri, str(data), str(out)], env)
    phases = json.loads(m.pop("stdout").strip().splitlines()[-1])
    return {**m, **phases}


def run_flowship(uri: str, data: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """The `flowship score` command itself, as a user runs it; its run record gives the
    time from the run's start (before the model is resolved) to its commit."""
    flowship = str(Path(sys.executable).with_name("flowship"))
    command = [flowship, "score", "--model", uri, "--input", str(data), "--id", "customer_id"]
    m = measure([*command, "--output", str(out), "--json"], env)
    record = json.loads(m.pop("stdout"))
    return {**m, "run_s": record["duration_s"], "rows": record["rows_out"]}


def make_input(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        rng = np.random.default_rng(start)
        table = pa.table(
            {
                "customer_id": np.arange(start, start + n, dtype=np.int64),
                "age": rng.integers(18, 80, n).astype(np.int64),
                "tenure_months": rng.uniform(0, 120, n),
                "recency_days": rng.uniform(0, 365, n),
                "frequency": rng.uniform(0, 50, n),
                "monetary_total": rng.uniform(0, 5000, n),
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=128 * 1024)
    assert writer is not None
    writer.close()


def register_models(env: dict[str, str], which: list[str]) -> dict[str, str]:
    """Train and register the churn models in the store ``env`` names; returns kind ->
    model URI."""
    code = f"""
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from flowship.registry import register_estimator
rng = np.random.default_rng(7)
n = 20000
x = pd.DataFrame({{"age": rng.integers(18, 80, n).astype("int64"),
    "tenure_months": rng.uniform(0, 120, n), "recency_days": rng.uniform(0, 365, n),
    "frequency": rng.uniform(0, 50, n), "monetary_total": rng.uniform(0, 5000, n)}})
logit = x.recency_days / 120 - x.tenure_months / 40 - x.frequency / 20 + rng.normal(0, 1, n)
y = (logit > 0).astype(int)
models = {{"lr": LogisticRegression(max_iter=1000),
          "rf": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0)}}
for kind in {which!r}:
    register_estimator("Churn_" + kind, models[kind].fit(x, y), x.head(100))
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return {kind: f"models:/Churn_{kind}/1" for kind in which}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--models", nargs="+", default=["lr", "rf"], choices=["lr", "rf"])
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    isolate()

    work = Path(tempfile.mkdtemp(prefix="flowship-bench-batch-"))
    home = work / "home"
    # The throwaway store (isolate() forgot the caller's).
    env = {
        **os.environ,
        "FLOWSHIP_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    uris = register_models(env, args.models)
    results = []
    header = (
        f"{'model':5} {'rows':>11} {'approach':9} {'wall s':>7} {'rows/s':>10} "
        f"{'load s':>7} {'run s':>6} {'peak RSS MB':>12}"
    )
    first = work / "first.parquet"
    make_input(first, 10_000)
    for kind in args.models:
        cold = run_flowship(uris[kind], first, work / f"first_{kind}", env)
        print(f"{kind:5} first flowship run of the version (10,000 rows): {cold['wall_s']:.1f} s")
    print(header)
    for rows in args.rows:
        data = work / f"customers_{rows}.parquet"
        make_input(data, rows)
        for kind in args.models:
            uri = uris[kind]
            seed = run_seed(uri, data, work / f"seed_{kind}.parquet", env)
            ours = run_flowship(uri, data, work / f"out_{kind}_{rows}", env)
            assert seed["rows"] == ours["rows"] == rows, (seed, ours)
            for name, m in (("seed", seed), ("flowship", ours)):
                load = f"{m['load_s']:7.1f}" if "load_s" in m else f"{'':7}"
                run = f"{m['run_s']:6.1f}" if "run_s" in m else f"{'':6}"
                print(
                    f"{kind:5} {rows:>11,} {name:9} {m['wall_s']:7.1f} "
                    f"{rows / m['wall_s']:>10,.0f} {load} {run} {m['peak_rss_mb']:>12,.0f}",
                    flush=True,
                )
            print(
                f"{kind:5} {rows:>11,} speed-up  {seed['wall_s'] / ours['wall_s']:.1f}x "
                "(end to end, process start to exit)",
                flush=True,
            )
            results.append({"model": kind, "rows": rows, "seed": seed, "flowship": ours})
        data.unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"(work folder: {work}; wall times include process start and model load)")


if __name__ == "__main__":
    main()
