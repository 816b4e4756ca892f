"""Delta time travel: ``SOURCE@vN`` and ``SOURCE@TIME`` on real Delta tables written in
several versions, for drift and performance, from the CLI and the Python API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from flowship.config import get_settings
from flowship.errors import InvalidInput
from flowship.monitoring.sources import open_source


def features(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "customer_id": np.arange(n),
            "age": rng.normal(40 + shift, 8, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )


@pytest.fixture
def versions(tmp_path):
    """v0: the baseline's distribution; v1: an append of the same; v2: an overwrite
    with ``age`` shifted by 12. Returns the path and each version's commit time."""
    path = str(tmp_path / "features")
    write_deltalake(path, features(1500, seed=1))
    time.sleep(0.05)  # distinct commit times, to travel to each by time
    write_deltalake(path, features(1500, seed=2), mode="append")
    time.sleep(0.05)
    write_deltalake(path, features(2000, seed=3, shift=12), mode="overwrite")
    stamps = {h["version"]: h["timestamp"] for h in DeltaTable(path).history()}
    return path, stamps


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def test_each_version_reads_its_own_rows(versions):
    path, stamps = versions
    assert open_source(f"{path}@v0").rows_hint == 1500
    assert open_source(f"{path}@v1").rows_hint == 3000
    assert open_source(f"{path}@v2").rows_hint == 2000
    assert open_source(path).rows_hint == 2000
    # By time: the version current at that instant.
    assert open_source(f"{path}@{iso(stamps[1])}").rows_hint == 3000
    assert open_source(f"{path}@{iso(stamps[0])}").rows_hint == 1500
    assert open_source(f"{path}@v1").label() == f"{path}@v1"


def test_a_time_goes_by_the_commit_times_the_history_shows(versions):
    """A log file written (or copied) after its recorded commit time: the instant its
    history shows still reads that version (deltalake's own lookup goes by the file's
    modification time, which under load lagged the recorded time by a few ms)."""
    import os

    path, stamps = versions
    log_file = os.path.join(path, "_delta_log", f"{1:020d}.json")
    later = stamps[1] / 1000 + 5
    os.utime(log_file, (later, later))
    assert open_source(f"{path}@{iso(stamps[1])}").rows_hint == 3000
    assert open_source(f"{path}@{iso(stamps[2])}").rows_hint == 2000


def test_drift_between_versions_of_one_table(cli, versions, tmp_path):
    path, _ = versions
    out = tmp_path / "same.json"
    same = cli(
        "monitor",
        "drift",
        "--baseline",
        f"{path}@v0",
        "--current",
        f"{path}@v1",
        "--columns",
        "age,plan",
        "--json",
        out,
    )
    assert same.exit_code == 0, same.stderr
    report = json.loads(out.read_text())
    assert report["n_reference"] == 1500 and report["n_current"] == 3000
    assert report["baseline"] == f"{path}@v0" and report["drifted_columns"] == []
    out = tmp_path / "shifted.json"
    shifted = cli(
        "monitor",
        "drift",
        "--baseline",
        f"{path}@v1",
        "--current",
        path,
        "--columns",
        "age,plan",
        "--json",
        out,
    )
    assert shifted.exit_code == 1, shifted.stderr
    assert json.loads(out.read_text())["drifted_columns"] == ["age"]


def test_table_name_with_a_version_and_a_where(cli, tmp_path):
    uri = get_settings().table_uri("scored")
    write_deltalake(uri, features(1000, seed=1))
    write_deltalake(uri, features(1000, seed=4, shift=12), mode="overwrite")
    out = tmp_path / "r.json"
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        "table:scored@v0",
        "--current",
        "table:scored@v0",
        "--where",
        "customer_id < 500",
        "--columns",
        "age",
        "--json",
        out,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n_reference"] == 1000 and report["n_current"] == 500
    assert report["current"] == "table:scored@v0 where customer_id < 500"


def test_performance_at_a_version(cli, tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 3000)
    predictions = str(tmp_path / "predictions")
    good = np.clip(0.5 + (truth - 0.5) * 0.6 + rng.normal(0, 0.2, 3000), 0, 1)
    write_deltalake(predictions, pa.table({"customer_id": np.arange(3000), "probability": good}))
    # v1 appends the next batch of predictions, with no actuals yet.
    write_deltalake(
        predictions,
        pa.table({"customer_id": np.arange(3000, 4000), "probability": np.full(1000, 0.5)}),
        mode="append",
    )
    actuals = tmp_path / "actuals.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"customer_id": np.arange(3000), "churned": truth}), actuals)
    reports = {}
    for ref in (f"{predictions}@v0", predictions):
        out = tmp_path / f"perf{len(reports)}.json"
        result = cli(
            "monitor",
            "performance",
            "--predictions",
            ref,
            "--actuals",
            actuals,
            "--id",
            "customer_id",
            "--json",
            out,
        )
        assert result.exit_code in (0, 1), result.stderr
        reports[ref] = json.loads(out.read_text())
    assert reports[f"{predictions}@v0"]["n_predictions"] == 3000
    assert reports[f"{predictions}@v0"]["coverage"] == 1.0
    assert reports[predictions]["n_predictions"] == 4000
    assert reports[predictions]["coverage"] == 0.75


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("@v7", "has no version 7: its latest is 2."),
        ("@2001-01-01", "has no version as old as 2001-01-01T00:00:00+00:00"),
        ("@2026-13-45", "Cannot read the time in"),
    ],
)
def test_a_version_the_table_never_had_is_refused_before_any_report(
    cli, versions, tmp_path, suffix, message
):
    path, _ = versions
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        f"{path}@v0",
        "--current",
        f"{path}{suffix}",
        "--html",
        html,
        "--json",
        out,
    )
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the message and its hint
    assert not html.exists() and not out.exists()


def test_a_version_on_a_source_that_is_not_delta_is_refused(cli, tmp_path):
    import pyarrow.parquet as pq

    parquet = tmp_path / "plain.parquet"
    pq.write_table(features(500, seed=1), parquet)
    out = tmp_path / "r.json"
    result = cli(
        "monitor", "drift", "--baseline", parquet, "--current", f"{parquet}@v1", "--json", out
    )
    assert result.exit_code == 2
    assert "is not a Delta table, so it has no versions" in result.stderr
    assert not out.exists()
    missing = cli(
        "monitor", "drift", "--baseline", parquet, "--current", f"{tmp_path / 'nowhere'}@v1"
    )
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    one = str(tmp_path / "one")
    write_deltalake(one, features(10, seed=1))
    with pytest.raises(InvalidInput, match="has no version 3: its latest is 0"):
        open_source(f"{one}@v3")


def test_a_path_that_exists_with_an_at_sign_is_read_as_written(tmp_path):
    import pyarrow.parquet as pq

    odd = tmp_path / "export@v2.parquet"
    pq.write_table(features(100, seed=1), odd)
    assert open_source(str(odd)).rows_hint == 100
