"""Drift check speed: flowship's default rule vs Evidently 0.7's DataDriftPreset.

Both read the same Parquet files (1,000,000 rows x 30 columns, 20 numerical and 10
categorical, 7 of them shifted) in their own subprocess, which reports its time and
peak memory (ru_maxrss) and the columns it flags. Evidently 0.7 does not import with
pandas 3, so it runs from its own virtualenv (benchmarks/.venv-evidently, created on
first use with evidently==0.7.* and pandas<3).

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
DATA = HERE / ".data"
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


def make_data(rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    DATA.mkdir(exist_ok=True)
    base, cur = DATA / f"baseline_{rows}.parquet", DATA / f"current_{rows}.parquet"
    if base.exists() and cur.exists():
        return base, cur
    frames = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        shifted = seed == 2
        cols = {}
        for i in range(N_NUM):
            name = f"num_{i:02d}"
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
            cols[name] = x
        for i in range(N_CAT):
            name = f"cat_{i:02d}"
            values = np.array([f"v{k}" for k in range(6)], dtype=object)
            p = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
            if shifted and i == 1:
                p = p[::-1]
            col = rng.choice(values, rows, p=p)
            if shifted and i == 0:
                col[rng.random(rows) < 0.25] = "brand_new"
            cols[name] = col
        frames.append(pd.DataFrame(cols))
    frames[0].to_parquet(base, index=False)
    frames[1].to_parquet(cur, index=False)
    return base, cur


def run_flowship(base: str, cur: str) -> dict:
    import pandas as pd

    from flowship.monitoring.drift import check_drift

    t0 = time.perf_counter()
    ref, now = pd.read_parquet(base), pd.read_parquet(cur)
    t1 = time.perf_counter()
    report = check_drift(ref, now)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "drift_s": t2 - t1, "flagged": sorted(report.drifted_columns)}


def run_evidently(base: str, cur: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    ref, now = pd.read_parquet(base), pd.read_parquet(cur)
    t1 = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=[c for c in ref.columns if c.startswith("num_")],
        categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(now, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    t2 = time.perf_counter()
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            score, threshold = metric["value"], config["threshold"]
            # p-value tests drift below their threshold, distances at or above it.
            p_value = "p_value" in str(config.get("method", "")).lower()
            if (score < threshold) if p_value else (score >= threshold):
                flagged.append(config["column"])
    return {"load_s": t1 - t0, "drift_s": t2 - t1, "flagged": sorted(flagged)}


def side(name: str, base: str, cur: str) -> None:
    """Runs in the subprocess: one tool, then its peak memory."""
    result = (run_flowship if name == "flowship" else run_evidently)(base, cur)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


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


def spawn(python: Path, name: str, base: Path, cur: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run(
        [str(python), __file__, "--side", name, str(base), str(cur)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args.side, *args.paths)
        return
    base, cur = make_data(args.rows)
    evidently_python = ensure_evidently()
    results: dict[str, list[dict]] = {"flowship": [], "evidently": []}
    for _ in range(args.repeat):
        results["flowship"].append(spawn(Path(sys.executable), "flowship", base, cur))
        results["evidently"].append(spawn(evidently_python, "evidently", base, cur))
    truth = sorted(SHIFTED)
    print(f"{args.rows:,} rows x {N_NUM + N_CAT} columns; truly shifted: {', '.join(truth)}")
    best = {}
    for tool, runs in results.items():
        fastest = min(runs, key=lambda r: r["drift_s"])
        best[tool] = fastest
        missed = sorted(set(truth) - set(fastest["flagged"]))
        false = sorted(set(fastest["flagged"]) - set(truth))
        print(
            f"{tool:10s} drift {fastest['drift_s']:7.2f} s  (+ read {fastest['load_s']:.2f} s)  "
            f"peak {fastest['peak_mb']:7.0f} MB  flagged {len(fastest['flagged'])}  "
            f"missed {missed or 'none'}  false alarms {false or 'none'}"
        )
        print(f"{'':10s} flagged: {', '.join(fastest['flagged']) or 'none'}")
    ratio = best["evidently"]["drift_s"] / best["flowship"]["drift_s"]
    memory = best["evidently"]["peak_mb"] / best["flowship"]["peak_mb"]
    print(f"flowship is {ratio:.1f}x faster and uses {memory:.1f}x less peak memory")


if __name__ == "__main__":
    main()
