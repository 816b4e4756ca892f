"""Monitoring tied to registered models: health, attached baselines, production_auc."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flowship.errors import NotFound


@pytest.fixture(scope="module")
def churn():
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)

    data = pd.DataFrame({"age": rng.normal(40, 10, 600), "tenure": rng.normal(24, 8, 600)})
    y = (data["age"] + rng.normal(0, 10, 600) > 42).astype(int)
    return data, y, LogisticRegression().fit(data, y)


@pytest.fixture
def registered(churn):
    """ChurnPredictor v1 in Production, v2 in Staging."""
    from flowship.registry import promote, register_estimator

    data, _, model = churn
    register_estimator("ChurnPredictor", model, data.head(5))
    register_estimator("ChurnPredictor", model, data.head(5))
    promote("ChurnPredictor", 1, "production", force=True, reason="test setup")
    promote("ChurnPredictor", 2, "staging", force=True, reason="test setup")
    return data


def checks(report):
    return {c.check: c for c in report.checks}


def test_health_age_staging_aliases_and_freshness(registered, tmp_path):
    from deltalake import write_deltalake

    from flowship.config import get_settings
    from flowship.monitoring.health import check_health

    write_deltalake(get_settings().table_uri("churn_predictions"), registered.head(10))
    report = check_health(
        "ChurnPredictor",
        deployments=["models:/ChurnPredictor@production"],
        prediction_tables=["table:churn_predictions", "table:never_written"],
    )
    got = checks(report)
    assert got["production_age"].status == "ok"
    assert (
        got["staging_waiting"].status == "warning"
        and "v2 waits in Staging" in got["staging_waiting"].message
    )
    # v1 (@production) is served; v2 (@staging) is not.
    assert got["alias_served"].status == "warning"
    assert got["alias_served"].details["unserved"] == {"staging": "2"}
    fresh = [c for c in report.checks if c.check == "predictions_fresh"]
    assert [c.status for c in fresh] == ["ok", "alert"]
    later = check_health("ChurnPredictor", now=datetime.now(UTC) + timedelta(days=91))
    assert checks(later)["production_age"].status == "alert"
    assert "over 90" in checks(later)["production_age"].message
    stale = check_health(
        "ChurnPredictor",
        prediction_tables=["table:churn_predictions"],
        max_silence_hours=1,
        now=datetime.now(UTC) + timedelta(hours=2),
    )
    assert checks(stale)["predictions_fresh"].status == "alert"


def test_cli_health(cli, registered):
    ok = cli("monitor", "health", "models:/ChurnPredictor@production", "--json", "-")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "warning"
    old = cli("monitor", "health", "ChurnPredictor", "--max-age-days", "0.000001")
    assert old.exit_code == 1 and "health:production_age" in old.stderr
    missing = cli("monitor", "health", "NoSuchModel")
    assert missing.exit_code == 2 and "NoSuchModel" in missing.stderr


def test_attached_baseline_and_production_metrics(cli, registered, churn, tmp_path):
    from flowship.registry import get_version

    data, y, model = churn
    data.to_parquet(tmp_path / "train.parquet")
    attach = cli(
        "monitor",
        "attach-baseline",
        "models:/ChurnPredictor@production",
        tmp_path / "train.parquet",
    )
    assert attach.exit_code == 0, attach.stderr
    assert "to models:/ChurnPredictor/1" in attach.stderr
    shifted = data.assign(age=data["age"] + 15)
    shifted.to_parquet(tmp_path / "current.parquet")
    result = cli(
        "monitor",
        "drift",
        "--model",
        "models:/ChurnPredictor@production",
        "--current",
        tmp_path / "current.parquet",
        "--json",
        "-",
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["drifted_columns"] == ["age"]
    # The model's own outputs move with its inputs.
    scored = cli(
        "monitor",
        "drift",
        "--model",
        "models:/ChurnPredictor@production",
        "--current",
        tmp_path / "current.parquet",
        "--score-with-model",
        "--json",
        "-",
    )
    assert scored.exit_code == 1, scored.stderr
    outputs = {c["name"]: c for c in json.loads(scored.stdout)["columns"]}
    assert outputs["probability"]["role"] == "prediction"
    assert outputs["probability"]["drifted"]
    # No baseline on v2: say how to attach one.
    none = cli(
        "monitor",
        "drift",
        "--model",
        "models:/ChurnPredictor/2",
        "--current",
        tmp_path / "current.parquet",
    )
    assert none.exit_code == 2 and "has no baseline attached" in none.stderr
    assert "flowship monitor attach-baseline" in none.stderr

    scored = data.assign(customer_id=range(len(data)), probability=model.predict_proba(data)[:, 1])
    scored.to_parquet(tmp_path / "scored.parquet")
    actuals = scored[["customer_id"]].assign(churned=y.to_numpy())
    actuals.to_parquet(tmp_path / "actuals.parquet")
    perf = cli(
        "monitor",
        "performance",
        "--predictions",
        tmp_path / "scored.parquet",
        "--actuals",
        tmp_path / "actuals.parquet",
        "--id",
        "customer_id",
        "--model",
        "models:/ChurnPredictor@production",
        "--log-mlflow",
    )
    assert perf.exit_code == 0, perf.stderr
    metrics = get_version("ChurnPredictor", 1).metrics
    assert metrics["production_auc"] > 0.75 and "production_accuracy" in metrics


def test_unknown_model_ref(cli, tmp_path, frame):
    frame(100, seed=1).to_parquet(tmp_path / "c.parquet")
    result = cli(
        "monitor",
        "drift",
        "--model",
        "models:/Ghost@production",
        "--current",
        tmp_path / "c.parquet",
    )
    assert result.exit_code == 2 and "Ghost" in result.stderr
    assert "Traceback" not in result.stderr


def test_monitor_file_runs_every_check(cli, registered, tmp_path, webhook):
    data = registered
    data.to_parquet(tmp_path / "base.parquet")
    data.assign(tenure=data["tenure"] * 3).to_parquet(tmp_path / "cur.parquet")
    (tmp_path / "monitor.yaml").write_text(
        f"""
kind: monitor
name: churn-daily
model: models:/ChurnPredictor@production
webhook: {webhook.url}
drift:
  baseline: base.parquet
  current: cur.parquet
health:
  max_age_days: 90
report:
  html: out/report.html
  json: out/report.json
"""
    )
    result = cli("monitor", "run", tmp_path / "monitor.yaml")
    assert result.exit_code == 1, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["kind"] == "monitor" and set(report) >= {"drift", "health", "alerts"}
    assert report["drift"]["drifted_columns"] == ["tenure"]
    assert len(webhook.received) == 1
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Data drift" in html and "Model health" in html

    from flowship.monitoring import run_monitor_file

    again = run_monitor_file(tmp_path / "monitor.yaml")
    assert again.fired and again.alerts[0]["delivery"] == "suppressed"
    assert len(webhook.received) == 1


def test_download_of_missing_baseline_is_not_found(registered):
    from flowship.monitoring.baseline import download_baseline

    with pytest.raises(NotFound, match="no baseline attached"):
        download_baseline("models:/ChurnPredictor/1")


def test_health_reads_recorded_deployments(cli, registered, tmp_path):
    from flowship.monitoring.health import check_health

    skipped = checks(check_health("ChurnPredictor"))["alias_served"]
    assert skipped.status == "skipped" and "no deployment is recorded" in skipped.message
    spec = tmp_path / "d.yaml"
    spec.write_text(
        "name: churn\nmodel: ChurnPredictor\nvariants:\n"
        "  champion: {ref: '@production', weight: 100}\n"
    )
    assert cli("deployment", "apply", spec).exit_code == 0
    one = checks(check_health("ChurnPredictor"))["alias_served"]
    assert one.status == "warning" and one.details["unserved"] == {"staging": "2"}
    spec.write_text(spec.read_text() + "  challenger: {ref: '@staging', shadow: true}\n")
    assert cli("deployment", "apply", spec).exit_code == 0
    both = checks(check_health("ChurnPredictor"))["alias_served"]
    assert both.status == "ok" and both.details["served_versions"] == ["1", "2"]
