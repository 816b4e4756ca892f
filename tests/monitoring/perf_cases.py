"""The performance cases of the existing tests, as data: the parity test runs each
through the out-of-core implementation and compares with what the in-memory one
reported (``data/performance_golden.json``, written by ``python -m
tests.monitoring.perf_cases`` at commit dfb9a56, which joined pandas frames)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GOLDEN = Path(__file__).parent / "data" / "performance_golden.json"


def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    """test_performance.py's fixture: 4000 predictions, 3000 actuals, AUC about 0.8."""
    rng = np.random.default_rng(8)
    n = 4000
    truth = rng.integers(0, 2, n)
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
    actuals = pd.DataFrame({"customer_id": np.arange(3000), "churned": truth[:3000]})
    return predictions, actuals


def regression() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 500)
    pred = y + rng.normal(0, 5, 500)
    return (
        pd.DataFrame({"id": range(500), "prediction": pred}),
        pd.DataFrame({"id": range(500), "amount": y}),
    )


def labels() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Text labels, a predicted label column, a few actuals missing."""
    rng = np.random.default_rng(3)
    n = 1500
    truth = rng.choice(["stay", "churn"], n, p=[0.7, 0.3])
    guess = np.where(rng.random(n) < 0.8, truth, np.where(truth == "stay", "churn", "stay"))
    actual = pd.Series(truth, dtype=object)
    actual[rng.random(n) < 0.05] = None
    return (
        pd.DataFrame({"cid": [f"c{i}" for i in range(n)], "label": guess}),
        pd.DataFrame({"cid": [f"c{i}" for i in range(n)], "outcome": actual}),
    )


def multiclass() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(5)
    n = 2000
    truth = rng.integers(0, 3, n)
    guess = np.where(rng.random(n) < 0.6, truth, rng.integers(0, 3, n))
    return (
        pd.DataFrame({"id": np.arange(n), "prediction": guess}),
        pd.DataFrame({"id": np.arange(n)[::-1].copy(), "y": truth[::-1].copy()}),
    )


CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "scored": (scored, {"id_column": "customer_id"}),
    "scored_windows_segments": (
        scored,
        {
            "id_column": "customer_id",
            "time_column": "prediction_date",
            "window": "1d",
            "segment_column": "region",
        },
    ),
    "scored_12h_thresholds": (
        scored,
        {
            "id_column": "customer_id",
            "time_column": "prediction_date",
            "window": "12h",
            "thresholds": {"auc": (">=", 0.99), "log_loss": ("<=", 0.1)},
        },
    ),
    "scored_few": (lambda: (scored()[0], scored()[1].head(20)), {"id_column": "customer_id"}),
    "regression": (regression, {"id_column": "id", "thresholds": {"rmse": ("<=", 3.0)}}),
    "regression_segments": (
        lambda: (regression()[0].assign(seg=lambda f: f["id"] % 3), regression()[1]),
        {"id_column": "id", "segment_column": "seg"},
    ),
    "text_labels": (
        labels,
        {"id_column": "cid", "prediction_column": "label", "positive_label": "churn"},
    ),
    "multiclass": (multiclass, {"id_column": "id"}),
}


def main() -> None:
    from flowship.monitoring.performance import evaluate_performance

    golden = {}
    for name, (make, params) in CASES.items():
        predictions, actuals = make()
        report = evaluate_performance(predictions, actuals, **params).to_dict()
        report.pop("created_at")
        golden[name] = report
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {len(golden)} cases to {GOLDEN}")


if __name__ == "__main__":
    main()
