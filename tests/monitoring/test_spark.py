"""``--engine spark``: Spark counts, the same code decides; same reports as local mode."""

from __future__ import annotations

import json

import pytest

from flowship.monitoring.drift import check_drift
from flowship.monitoring.performance import evaluate_performance
from tests.monitoring import drift_cases, perf_cases
from tests.monitoring.test_drift_parity import NUMBERS, SAME
from tests.monitoring.test_performance_parity import assert_same_report as same_performance

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from flowship.batch.spark import spark_session

    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    return session


def same_drift(ours: dict, theirs: dict) -> None:
    """As the parity test, except that bins may be listed in another order where
    categories tie (Spark has no order of first appearance)."""
    for key in ("status", "dataset_drift", "drifted_columns", "n_reference", "n_current"):
        assert ours[key] == theirs[key], key
    for mine, old in zip(ours["columns"], theirs["columns"], strict=True):
        for key in SAME:
            assert mine[key] == old[key], (mine["name"], key)
        for key in NUMBERS:
            if old[key] is None:
                assert mine[key] is None, (mine["name"], key)
            else:
                assert mine[key] == pytest.approx(old[key], rel=1e-9), (mine["name"], key)
        if old["bins"]:
            for side in ("reference_counts", "current_counts"):
                assert dict(zip(mine["bins"]["labels"], mine["bins"][side], strict=True)) == dict(
                    zip(old["bins"]["labels"], old["bins"][side], strict=True)
                )
            assert sorted(mine["bins"].get("unseen_values", [])) == sorted(
                old["bins"].get("unseen_values", [])
            )


@pytest.mark.parametrize(
    "case",
    [
        "real_shifts",
        "missing_jump",
        "missing_current",
        "constant_int_changed",
        "constant_text_changed",
        "codes",
        "codes_override",
        "too_few_rows",
        "ks_seed",
        "ks_missing",
    ],
)
def test_spark_drift_equals_local(case, spark, tmp_path):
    make, params = drift_cases.CASES[case]
    reference, current = make()
    reference.to_parquet(tmp_path / "b.parquet", index=False)
    current.to_parquet(tmp_path / "c.parquet", index=False)
    golden = json.loads(drift_cases.GOLDEN.read_text())[case]
    report = check_drift(
        str(tmp_path / "b.parquet"), str(tmp_path / "c.parquet"), engine="spark", **params
    )
    same_drift(report.to_dict(), golden)


@pytest.mark.parametrize(
    "case", ["scored_windows_segments", "regression", "text_labels", "multiclass"]
)
def test_spark_performance_equals_local(case, spark, tmp_path):
    make, params = perf_cases.CASES[case]
    predictions, actuals = make()
    predictions.to_parquet(tmp_path / "p.parquet", index=False)
    actuals.to_parquet(tmp_path / "a.parquet", index=False)
    golden = json.loads(perf_cases.GOLDEN.read_text())[case]
    report = evaluate_performance(
        str(tmp_path / "p.parquet"), str(tmp_path / "a.parquet"), engine="spark", **params
    )
    same_performance(json.loads(json.dumps(report.to_dict(), default=str)), golden)


def test_cli_engine_spark(cli, spark, tmp_path):
    make, _ = drift_cases.CASES["cli_files"]
    reference, current = make()
    reference.to_parquet(tmp_path / "b.parquet", index=False)
    current.to_parquet(tmp_path / "c.parquet", index=False)
    args = ["monitor", "drift", "--baseline", tmp_path / "b.parquet", "--json", "-"]
    spark_run = cli(*args, "--current", tmp_path / "c.parquet", "--engine", "spark")
    local_run = cli(*args, "--current", tmp_path / "c.parquet")
    assert spark_run.exit_code == local_run.exit_code == 1, spark_run.stderr
    ours, theirs = json.loads(spark_run.stdout), json.loads(local_run.stdout)
    assert ours["engine"] == "spark" and theirs["engine"] == "local"
    assert ours["drifted_columns"] == theirs["drifted_columns"]
    filtered = cli(
        *args, "--current", tmp_path / "c.parquet", "--engine", "spark", "--where", "age < -1000"
    )
    assert filtered.exit_code == 2 and "no rows matching --where" in filtered.stderr
    sql = cli(*args, "--current", "sql:SELECT 1 AS age", "--columns", "age", "--engine", "spark")
    assert sql.exit_code == 2 and "spark engine reads files and tables" in sql.stderr


def test_spark_reads_the_delta_version_asked_for(spark, tmp_path):
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(0)
    path = str(tmp_path / "features")
    write_deltalake(path, pa.table({"x": rng.normal(0, 1, 800)}))
    write_deltalake(path, pa.table({"x": rng.normal(3, 1, 600)}), mode="overwrite")
    old = check_drift(f"{path}@v0", f"{path}@v0", engine="spark")
    assert (old.n_reference, old.n_current, old.drifted_columns) == (800, 800, [])
    moved = check_drift(f"{path}@v0", path, engine="spark")
    assert (moved.n_current, moved.drifted_columns) == (600, ["x"])
