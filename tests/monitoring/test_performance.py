"""Performance against delayed actuals: metrics match scikit-learn, thresholds alert."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m

from flowship.errors import InvalidInput, UsageError
from flowship.monitoring.performance import evaluate_performance, parse_threshold


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(8)
    n = 4000
    truth = rng.integers(0, 2, n)
    # A usable but imperfect model: AUC around 0.8.
    proba = np.clip(0.5 + (truth - 0.5) * 0.35 + rng.normal(0, 0.25, n), 0, 1)
    day = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 4 * 24, n), "h")
    predictions = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "probability": proba,
            "prediction_date": day,
            "region": rng.choice(["north", "south"], n),
        }
    )
    # Actuals arrive later: only 3000 of the 4000 so far.
    actuals = pd.DataFrame({"customer_id": np.arange(3000), "churned": truth[:3000]})
    return predictions, actuals, truth


def test_classification_metrics_match_sklearn_and_coverage_is_reported(scored):
    predictions, actuals, truth = scored
    report = evaluate_performance(predictions, actuals, id_column="customer_id")
    y, p = truth[:3000], predictions["probability"].to_numpy()[:3000]
    assert report.n_predictions == 4000 and report.n_with_actuals == 3000
    assert report.coverage == 0.75
    got = report.metrics
    assert got["auc"] == pytest.approx(m.roc_auc_score(y, p))
    assert got["accuracy"] == pytest.approx(m.accuracy_score(y, p >= 0.5))
    assert got["precision"] == pytest.approx(m.precision_score(y, p >= 0.5))
    assert got["recall"] == pytest.approx(m.recall_score(y, p >= 0.5))
    assert got["f1"] == pytest.approx(m.f1_score(y, p >= 0.5))
    assert got["log_loss"] == pytest.approx(m.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))
    assert got["brier"] == pytest.approx(m.brier_score_loss(y, p))
    assert report.status == "ok"  # the seed's default: auc >= 0.75


def test_threshold_violation_is_an_alert(scored):
    predictions, actuals, _ = scored
    report = evaluate_performance(
        predictions,
        actuals,
        id_column="customer_id",
        thresholds=dict([parse_threshold("auc>=0.99")]),
    )
    assert report.status == "alert"
    assert (
        report.violations[0]["metric"] == "auc"
        and "needs >= 0.99" in report.violations[0]["message"]
    )


def test_windows_and_segments(scored):
    predictions, actuals, _ = scored
    report = evaluate_performance(
        predictions,
        actuals,
        id_column="customer_id",
        time_column="prediction_date",
        window="1d",
        segment_column="region",
    )
    assert [w["start"][:10] for w in report.windows] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
    ]
    assert sum(w["n"] for w in report.windows) == 3000
    assert {s["segment"] for s in report.segments} == {"north", "south"}
    json.dumps(report.to_dict(), allow_nan=False)


def test_regression_metrics():
    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 500)
    pred = y + rng.normal(0, 5, 500)
    predictions = pd.DataFrame({"id": range(500), "prediction": pred})
    actuals = pd.DataFrame({"id": range(500), "amount": y})
    report = evaluate_performance(
        predictions, actuals, id_column="id", thresholds=dict([parse_threshold("rmse<=3")])
    )
    assert report.task == "regression"
    assert report.metrics["rmse"] == pytest.approx(np.sqrt(m.mean_squared_error(y, pred)))
    assert report.metrics["r2"] == pytest.approx(m.r2_score(y, pred))
    assert report.status == "alert"


def test_too_few_actuals_is_insufficient_data(scored):
    predictions, actuals, _ = scored
    report = evaluate_performance(predictions, actuals.head(20), id_column="customer_id")
    assert report.status == "insufficient_data" and report.violations == []
    assert "need 50" in report.summary()


def test_bad_input(scored):
    predictions, actuals, _ = scored
    with pytest.raises(InvalidInput, match="duplicated id"):
        evaluate_performance(
            predictions, pd.concat([actuals, actuals.head(3)]), id_column="customer_id"
        )
    with pytest.raises(InvalidInput, match="have no column\\(s\\) 'cid'"):
        evaluate_performance(predictions, actuals, id_column="cid")
    with pytest.raises(UsageError, match="neither a 'probability' nor a 'prediction'"):
        evaluate_performance(
            predictions.drop(columns="probability"), actuals, id_column="customer_id"
        )
    with pytest.raises(UsageError, match="Name it with --label"):
        evaluate_performance(predictions, actuals.assign(x=1), id_column="customer_id")
    with pytest.raises(UsageError, match="needs a time column"):
        evaluate_performance(predictions, actuals, id_column="customer_id", window="1d")
    with pytest.raises(UsageError, match="Cannot read --window"):
        evaluate_performance(
            predictions,
            actuals,
            id_column="customer_id",
            time_column="prediction_date",
            window="-3",
        )
    broken = predictions.assign(probability=predictions["probability"] * 3)
    with pytest.raises(InvalidInput, match="outside \\[0, 1\\]"):
        evaluate_performance(broken, actuals, id_column="customer_id")
    for text in ("auc=0.7", "speed>=1", "", "auc>=x"):
        with pytest.raises(UsageError, match="Cannot read the threshold"):
            parse_threshold(text)


def test_cli_performance(cli, scored, tmp_path):
    predictions, actuals, _ = scored
    predictions.to_parquet(tmp_path / "p.parquet")
    actuals.to_csv(tmp_path / "a.csv", index=False)
    base = [
        "monitor",
        "performance",
        "--predictions",
        tmp_path / "p.parquet",
        "--actuals",
        tmp_path / "a.csv",
        "--id",
        "customer_id",
    ]
    ok = cli(*base, "--json", "-")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["metrics"]["auc"] > 0.75
    html = tmp_path / "perf.html"
    bad = cli(
        *base,
        "--threshold",
        "auc>=0.95",
        "--time-column",
        "prediction_date",
        "--window",
        "1d",
        "--html",
        html,
    )
    assert bad.exit_code == 1 and "performance:auc" in bad.stderr
    assert html.read_text().count("<polyline") >= 7  # one line per metric over the windows
    wrong = cli(*base, "--threshold", "auc>0.7x")
    assert wrong.exit_code == 2 and "Cannot read the threshold" in wrong.stderr
    needs = cli(*base, "--log-mlflow")
    assert needs.exit_code == 2 and "--log-mlflow needs --model" in needs.stderr


def test_performance_over_time_charts_earlier_runs(cli, scored, tmp_path):
    predictions, actuals, _ = scored
    predictions.to_parquet(tmp_path / "p.parquet")
    actuals.to_parquet(tmp_path / "a.parquet")
    html = tmp_path / "perf.html"
    for _ in range(3):
        result = cli(
            "monitor",
            "performance",
            "--predictions",
            tmp_path / "p.parquet",
            "--actuals",
            tmp_path / "a.parquet",
            "--id",
            "customer_id",
            "--name",
            "weekly",
            "--html",
            html,
        )
        assert result.exit_code == 0, result.stderr
    page = html.read_text()
    assert "Performance over time (per monitor run)" in page
    # 7 metrics x 3 runs (two recorded before this one, plus this one)
    assert page.count("<circle") == 21
