"""The live prediction log as a source: drift per variant, a window of the log against
an earlier window of the same log. The log here is a small Delta table with the
serving side's schema (docs/deployments.md), partitioned by date."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest


def log_rows(day: str, variant: str, n: int, *, seed: int, age_shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    age = rng.normal(40 + age_shift, 10, n)
    return pa.table(
        {
            "request_id": [f"r{seed}-{i}" for i in range(n)],
            "client_request_id": pa.nulls(n, pa.string()),
            "ts": pa.array(
                [start + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "date": pa.array([day] * n),
            "deployment": ["churn"] * n,
            "revision": pa.array([3] * n, pa.int64()),
            "variant": [variant] * n,
            "role": ["primary"] * n,
            "model_name": ["ChurnPredictor"] * n,
            "model_version": ["2" if variant == "b" else "1"] * n,
            "run_id": ["abc"] * n,
            "key": [f"c{i}" for i in range(n)],
            "latency_ms": rng.gamma(2, 2, n),
            "status": ["ok"] * n,
            "error": pa.nulls(n, pa.string()),
            "output": 1 / (1 + np.exp(-(age - 40) / 10)),
            "age": age,
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )


@pytest.fixture
def prediction_log():
    from deltalake import write_deltalake

    from flowship.config import get_settings

    uri = get_settings().table_uri("prediction_log")
    seed = 0
    for day, shift_b in (("2026-11-01", 0), ("2026-11-02", 0), ("2026-11-03", 12)):
        for variant in ("a", "b"):
            seed += 1
            shift = shift_b if variant == "b" else 0
            table = log_rows(day, variant, 600, seed=seed, age_shift=shift)
            write_deltalake(uri, table, mode="append", partition_by=["date"])
    return "table:prediction_log"


def test_drift_per_variant_current_window_against_baseline_window(cli, prediction_log, tmp_path):
    html = tmp_path / "variants.html"
    result = cli(
        "monitor", "drift",
        "--baseline", prediction_log, "--baseline-where", "date < '2026-11-03'",
        "--current", prediction_log, "--where", "date = '2026-11-03'",
        "--by", "variant", "--json", "-", "--html", html,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "variant=b/age" in html.read_text()
    report = json.loads(result.stdout)
    assert report["by"] == "variant"
    assert [g["group"]["value"] for g in report["groups"]] == ["a", "b"]
    a, b = report["groups"]
    # Only the log's features and output are compared, never ids, times or latency.
    assert {c["name"] for c in a["columns"]} == {"age", "plan", "output"}
    assert (a["n_reference"], a["n_current"]) == (1200, 600)
    assert a["drifted_columns"] == [] and a["status"] == "ok"
    assert set(b["drifted_columns"]) == {"age", "output"}
    output = next(c for c in b["columns"] if c["name"] == "output")
    assert output["role"] == "prediction"
    assert set(report["drifted_columns"]) == {"variant=b/age", "variant=b/output"}
    keys = {alert["key"] for alert in report["alerts"]}
    assert "drift:column:variant=b/age" in keys


def test_the_whole_log_against_a_training_sample(cli, prediction_log, frame, tmp_path):
    train = tmp_path / "train.parquet"
    frame(3000, seed=9)[["age", "plan"]].to_parquet(train)
    result = cli(
        "monitor", "drift", "--baseline", train, "--current", prediction_log,
        "--where", "date >= '2026-11-02'", "--columns", "age,plan", "--by", "variant",
        "--json", "-",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    groups = {g["group"]["value"]: g for g in report["groups"]}
    assert groups["a"]["n_reference"] == groups["b"]["n_reference"] == 3000
    assert groups["a"]["n_current"] == 1200
    assert groups["a"]["drifted_columns"] == [] and "age" in groups["b"]["drifted_columns"]


def test_performance_on_the_log_joined_with_actuals(cli, prediction_log, tmp_path):
    import pandas as pd

    from flowship.monitoring.sources import open_source

    log = open_source(prediction_log, role="predictions").to_table(["key", "output"]).to_pandas()
    rng = np.random.default_rng(4)
    actuals = log.drop_duplicates("key")[["key"]].assign(
        churned=lambda f: (rng.random(len(f)) < 0.5).astype(int)
    )
    actuals.to_parquet(tmp_path / "actuals.parquet")
    result = cli(
        "monitor", "performance", "--predictions", prediction_log,
        "--where", "variant = 'a' AND date = '2026-11-01'",
        "--actuals", tmp_path / "actuals.parquet", "--id", "key", "--score", "output",
        "--json", "-",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["n_predictions"] == 600 and report["n_with_actuals"] == 600
    assert pd.notna(report["metrics"]["auc"])
