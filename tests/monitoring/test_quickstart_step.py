"""The quickstart's monitoring step flags the shifted columns and writes the report."""

from __future__ import annotations

from pathlib import Path


def test_monitor_step_flags_the_shift_and_prints_the_report_path():
    from flowship.quickstart.monitor_step import monitor_step

    lines: list[str] = []
    result = monitor_step(say=lines.append)
    drift = result.reports["drift"]
    assert set(drift["drifted_columns"]) == {"recency_days", "frequency"}
    others = {c["name"]: c["status"] for c in drift["columns"] if not c["drifted"]}
    assert set(others) == {"age", "tenure_months", "monetary_total"}
    assert Path(result.html_path).is_file()
    assert any(line == f"HTML report: {result.html_path}" for line in lines)


def test_tour_step_attaches_the_training_data_to_production(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from flowship.quickstart import Tour
    from flowship.quickstart.data import FEATURES, churn_frame
    from flowship.quickstart.monitor_step import drift_step
    from flowship.registry import promote, register_estimator

    train = churn_frame(1000, seed=1)
    model = LogisticRegression(max_iter=300).fit(train[list(FEATURES)], train["churned"])
    register_estimator("ChurnPredictor", model, train[list(FEATURES)].head(5))
    promote("ChurnPredictor", 1, "production", force=True, reason="test setup")
    lines: list[str] = []
    tour = Tour(home=tmp_path, say=lines.append)
    train.to_parquet(tour.train_path, index=False)
    drift_step(tour)
    assert lines[0] == (
        "Attached the training sample to models:/ChurnPredictor/1 as its drift baseline."
    )
    assert any(line.startswith("HTML report: ") for line in lines)
    assert (tour.workdir / "drift_report.html").is_file()
