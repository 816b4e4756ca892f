"""Drift check speed and memory: `flowship monitor drift` vs Evidently 0.7's DataDriftPreset.

Both tools run end to end as a user runs them, each in its own process whose wall time,
CPU time (user + system, all threads) and peak RSS (``ru_maxrss`` of the child) are
measured: flowship is the CLI command (``flowship monitor drift --baseline B --current C
--html R --json J``, reading the Parquet files in batches, with a fresh
``FLOWSHIP_HOME``, so creating its state database is included); Evidently is a script
that imports it, reads both files with pandas, runs ``Report([DataDriftPreset()])`` and
saves the HTML report. The data: 30
columns, 20 numerical and 10 categorical, 7 of them shifted (see ``SHIFTED``).

Data is generated in chunks of 1,000,000 rows straight to Parquet files under
``benchmarks/.data`` (never whole in memory), float32 numbers from 10M rows on (half the
disk); above 10M rows, folders of the 10M files hard-linked (see ``make_data``). Evidently
0.7 does not import with pandas 3, so it runs from its own virtualenv
(benchmarks/.venv-evidently, created on first use); it reads everything into pandas, so
it runs only at sizes up to ``--evidently-max``.

    .venv/bin/python benchmarks/drift.py --rows 1000000                # with Evidently
    .venv/bin/python benchmarks/drift.py --rows 10000000 100000000     # flowship only
    .venv/bin/python benchmarks/drift.py --rows 100000000 --clean      # delete the data after
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
EVIDENTLY_VENV = HERE / ".venv-evidently"
DATA = HERE / ".data"
CHUNK = 1_000_000
N_NUM, N_CAT = 20, 10
SHIFTED = {
    "num_00": "mean +0.75 sd",
    "num_01": "scale x2",
    "num_02": "30% missing",
    "num_03": "lognormal, log-mean +0.75",
    "num_04": "20% above the baseline range",
    "cat_00": "new category in 25% of rows",
    "cat_01": "category shares reversed",
}

EVIDENTLY = """
import json, sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref, now = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
definition = DataDefinition(
    numerical_columns=[c for c in ref.columns if c.startswith("num_")],
    categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
)
snapshot = Report([DataDriftPreset()]).run(
    current_data=Dataset.from_pandas(now, data_definition=definition),
    reference_data=Dataset.from_pandas(ref, data_definition=definition),
)
snapshot.save_html(sys.argv[3])
flagged = []
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config.get("type", "").endswith("ValueDrift"):
        score, threshold = metric["value"], config["threshold"]
        # p-value tests drift below their threshold, distances at or above it.
        p_value = "p_value" in str(config.get("method", "")).lower()
        if (score < threshold) if p_value else (score >= threshold):
            flagged.append(config["column"])
print(json.dumps({"flagged": sorted(flagged)}))
"""

MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - start
if done.returncode not in (0, 1):  # 1: drift alerts fired, as expected here
    sys.stderr.write(done.stderr[-3000:])
    sys.exit(done.returncode)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_s": elapsed, "cpu_s": cpu, "peak_rss_mb": peak, "stdout": done.stdout}))
"""


def chunk(rows: int, seed: int, shifted: bool, float32: bool):  # -> pyarrow.Table
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(N_NUM):
        if i == 3 or i % 4 == 3:
            x = rng.lognormal(3 + (0.75 if shifted and i == 3 else 0), 1, rows)
        else:
            x = rng.normal(50, 10, rows)
        if shifted and i == 0:
            x += 7.5
        if shifted and i == 1:
            x = 50 + (x - 50) * 2
        if shifted and i == 2:
            x[rng.random(rows) < 0.3] = np.nan
        if shifted and i == 4:
            x[rng.random(rows) < 0.2] = 200.0
        cols[f"num_{i:02d}"] = pa.array(x.astype(np.float32) if float32 else x, from_pandas=True)
    values = np.array([f"v{k}" for k in range(6)] + ["brand_new"])
    for i in range(N_CAT):
        p = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
        if shifted and i == 1:
            p = p[::-1]
        codes = rng.choice(6, rows, p=p).astype(np.int32)
        if shifted and i == 0:
            codes[rng.random(rows) < 0.25] = 6
        cols[f"cat_{i:02d}"] = pa.DictionaryArray.from_arrays(codes, values).dictionary_decode()
    return pa.table(cols)


def make_data(rows: int) -> tuple[Path, Path]:
    """Two Parquet files of ``rows`` rows each, written chunk by chunk. Above 10M rows,
    two folders instead, holding the 10M-row files hard-linked rows / 10M times (drawing
    and encoding 100M x 30 random values took longer than the check on this shared
    machine); the reader decodes every row group of every file as if they differed."""
    import pyarrow.parquet as pq

    DATA.mkdir(exist_ok=True)
    if rows > 10 * CHUNK:
        if rows % (10 * CHUNK):
            raise SystemExit("above 10M, --rows must be a multiple of 10,000,000")
        folders = []
        for name, small in zip(("baseline", "current"), make_data(10 * CHUNK), strict=True):
            folder = DATA / f"{name}_{rows}"
            folder.mkdir(exist_ok=True)
            for i in range(rows // (10 * CHUNK)):
                link = folder / f"part-{i:04d}.parquet"
                if not link.exists():
                    os.link(small, link)
            folders.append(folder)
        return folders[0], folders[1]
    paths = []
    for name, shifted in (("baseline", False), ("current", True)):
        path = DATA / f"{name}_{rows}.parquet"
        paths.append(path)
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        writer = None
        for start in range(0, rows, CHUNK):
            seed = (2 if shifted else 1) * 1_000_003 + start // CHUNK
            table = chunk(min(CHUNK, rows - start), seed, shifted, rows >= 10_000_000)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
            print(f"  {name}: {start + table.num_rows:,} of {rows:,} rows", file=sys.stderr)
        assert writer is not None
        writer.close()
        tmp.rename(path)
    return paths[0], paths[1]


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print("creating", EVIDENTLY_VENV, "(evidently==0.7.*, pandas<3) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "evidently==0.7.*",
                "pandas<3",
                "pyarrow",
            ],
            check=True,
        )
    return python


def measure(command: list[str], env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_flowship(base: Path, cur: Path, out: Path) -> dict:
    flowship = Path(sys.executable).parent / "flowship"
    env = {**os.environ, "FLOWSHIP_HOME": str(out / "home")}
    report = out / "flowship.json"
    result = measure(
        [
            str(flowship),
            "monitor",
            "drift",
            "--baseline",
            str(base),
            "--current",
            str(cur),
            "--html",
            str(out / "flowship.html"),
            "--json",
            str(report),
        ],
        env,
    )
    result["flagged"] = json.loads(report.read_text())["drifted_columns"]
    return result


def run_evidently(base: Path, cur: Path, out: Path) -> dict:
    python = ensure_evidently()
    result = measure([str(python), "-c", EVIDENTLY, str(base), str(cur), str(out / "ev.html")])
    result["flagged"] = json.loads(result["stdout"].strip().splitlines()[-1])["flagged"]
    return result


def show(tool: str, rows: int, result: dict) -> None:
    truth = set(SHIFTED)
    flagged = set(result["flagged"])
    print(
        f"{rows:>12,} rows  {tool:9s} {result['wall_s']:8.1f} s (CPU {result['cpu_s']:.1f} s)  "
        f"peak RSS {result['peak_rss_mb']:7.0f} MB  flagged {len(flagged)}/{len(truth)} "
        f"missed {sorted(truth - flagged) or 'none'} "
        f"false alarms {sorted(flagged - truth) or 'none'}",
        flush=True,
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--evidently-max", type=int, default=1_000_000)
    parser.add_argument("--clean", action="store_true", help="delete generated data after")
    args = parser.parse_args()
    isolate()
    print(f"30 columns ({N_NUM} numerical, {N_CAT} categorical); shifted: {', '.join(SHIFTED)}")
    for rows in args.rows:
        base, cur = make_data(rows)
        with tempfile.TemporaryDirectory() as tmp:
            print(f"before: {load()}", flush=True)
            ours = run_flowship(base, cur, Path(tmp))
            show("flowship", rows, ours)
            if rows <= args.evidently_max:
                theirs = run_evidently(base, cur, Path(tmp))
                show("Evidently", rows, theirs)
                cpu, wall = theirs["cpu_s"] / ours["cpu_s"], theirs["wall_s"] / ours["wall_s"]
                memory = theirs["peak_rss_mb"] / ours["peak_rss_mb"]
                # CPU time is the figure to compare on a shared machine: wall time
                # counts the waits for a core that other processes hold.
                print(
                    f"{'':12s}       Evidently / flowship: {cpu:.1f}x the CPU time, "
                    f"{wall:.1f}x the wall time, {memory:.1f}x the peak memory "
                    f"(target: 50x; compare CPU time when the machine is loaded)"
                )
            print(f"after:  {load()}", flush=True)
        if args.clean:
            for path in (base, cur):
                if path.is_dir():
                    for link in path.iterdir():
                        link.unlink()
                    path.rmdir()
                else:
                    path.unlink()


if __name__ == "__main__":
    main()
