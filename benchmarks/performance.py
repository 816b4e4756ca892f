"""Performance monitoring at scale: `flowship monitor performance` joining N predictions
with N actuals out of core (DuckDB), with its wall time and peak RSS.

The data is generated in chunks of 1,000,000 rows straight to Parquet under
``benchmarks/.data`` (never whole in memory): predictions (``customer_id``,
``probability``, ``prediction_date`` over 30 days, ``region``) and actuals
(``customer_id``, ``churned``) written in another order, so the join is a real one.
The command computes AUC, accuracy, precision, recall, F1, log loss and Brier score
overall, per day (``--window 1d``) and per region, like a user's monthly check.

    .venv/bin/python benchmarks/performance.py --rows 50000000 [--clean]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _isolate import isolate

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
CHUNK = 1_000_000

MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - start
if done.returncode not in (0, 1):
    sys.stderr.write(done.stderr[-3000:])
    sys.exit(done.returncode)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_s": elapsed, "cpu_s": cpu, "peak_rss_mb": peak}))
"""


def make_data(rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    DATA.mkdir(exist_ok=True)
    predictions = DATA / f"predictions_{rows}.parquet"
    actuals = DATA / f"actuals_{rows}.parquet"
    if predictions.exists() and actuals.exists():
        return predictions, actuals
    chunks = range((rows + CHUNK - 1) // CHUNK)
    day0 = np.datetime64("2026-10-01")
    with (
        pq.ParquetWriter(predictions.with_suffix(".tmp"), _schema(pa, "p")) as p_out,
        pq.ParquetWriter(actuals.with_suffix(".tmp"), _schema(pa, "a")) as a_out,
    ):
        for k in chunks:
            rng = np.random.default_rng(k)
            n = min(CHUNK, rows - k * CHUNK)
            ids = np.arange(k * CHUNK, k * CHUNK + n, dtype=np.int64)
            truth = (rng.random(n) < 0.3).astype(np.int8)
            proba = np.clip(0.3 + (truth - 0.3) * 0.4 + rng.normal(0, 0.2, n), 0, 1)
            days = day0 + rng.integers(0, 30, n).astype("timedelta64[D]")
            p_out.write_table(
                pa.table(
                    {
                        "customer_id": ids,
                        "probability": proba,
                        "prediction_date": days,
                        "region": rng.choice(np.array(["north", "south", "east", "west"]), n),
                    },
                    schema=_schema(pa, "p"),
                )
            )
            # Actuals come back in another order: a chunk's ids shuffled, chunks reversed.
            j = len(chunks) - 1 - k
            back = np.random.default_rng(10_000 + j)
            m = min(CHUNK, rows - j * CHUNK)
            other = np.arange(j * CHUNK, j * CHUNK + m, dtype=np.int64)
            truth_other = (np.random.default_rng(j).random(m) < 0.3).astype(np.int8)
            order = back.permutation(m)
            a_out.write_table(
                pa.table(
                    {"customer_id": other[order], "churned": truth_other[order]},
                    schema=_schema(pa, "a"),
                )
            )
            print(f"  {(k + 1) * CHUNK:,} of {rows:,} rows", file=sys.stderr)
    predictions.with_suffix(".tmp").rename(predictions)
    actuals.with_suffix(".tmp").rename(actuals)
    return predictions, actuals


def _schema(pa, which: str):
    if which == "p":
        return pa.schema(
            [
                ("customer_id", pa.int64()),
                ("probability", pa.float64()),
                ("prediction_date", pa.date32()),
                ("region", pa.string()),
            ]
        )
    return pa.schema([("customer_id", pa.int64()), ("churned", pa.int8())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000_000])
    parser.add_argument("--clean", action="store_true", help="delete generated data after")
    args = parser.parse_args()
    isolate()
    flowship = Path(sys.executable).parent / "flowship"
    for rows in args.rows:
        predictions, actuals = make_data(rows)
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "perf.json"
            env = {**os.environ, "FLOWSHIP_HOME": str(Path(tmp) / "home")}
            command = [
                str(flowship), "monitor", "performance", "--predictions", str(predictions),
                "--actuals", str(actuals), "--id", "customer_id", "--label", "churned",
                "--time-column", "prediction_date", "--window", "1d", "--segment", "region",
                "--json", str(report),
            ]  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, *command],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            body = json.loads(report.read_text())
            shown = ", ".join(f"{k}={v:.4f}" for k, v in body["metrics"].items())
            print(
                f"{rows:,} predictions x {rows:,} actuals: {measured['wall_s']:.1f} s "
                f"(CPU {measured.get('cpu_s', 0):.1f} s), "
                f"peak RSS {measured['peak_rss_mb']:.0f} MB; joined {body['n_with_actuals']:,}; "
                f"{len(body['windows'])} windows, {len(body['segments'])} segments; {shown}",
                flush=True,
            )
        if args.clean:
            predictions.unlink()
            actuals.unlink()


if __name__ == "__main__":
    main()
