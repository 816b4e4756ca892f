"""The tour's monitoring step: drift between the training data and a shifted sample.

Customers in the "current" sample buy less often and have been away a month longer
(frequency down 40%, recency up 30 days): the default rule flags those two columns,
leaves the rest alone, and writes an HTML report whose path the tour prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flowship.config import get_settings


def drift_step(tour) -> None:  # tour: flowship.quickstart.Tour
    """The tour's step: the tour's training data, attached to the Production version."""
    monitor_step(
        model=f"models:/{tour.model}@production",
        say=tour.say,
        out_dir=tour.workdir,
        train_path=tour.train_path if tour.train_path.exists() else None,
    )


def monitor_step(
    *,
    model: str | None = None,
    say: Callable[[str], None] = lambda _: None,
    out_dir: Path | None = None,
    train_path: Path | None = None,
):  # -> flowship.monitoring.MonitorResult
    """Run the drift check; with ``model`` (e.g. ``models:/ChurnPredictor@production``)
    the training sample is first attached to that version and used as its baseline."""
    import pandas as pd

    from flowship.monitoring import run_drift
    from flowship.monitoring.baseline import attach_baseline
    from flowship.monitoring.specs import DriftSpec
    from flowship.quickstart.data import FEATURES, churn_frame

    out = out_dir or get_settings().home_dir / "quickstart"
    out.mkdir(parents=True, exist_ok=True)
    source = pd.read_parquet(train_path) if train_path else churn_frame(5000, seed=42)
    train = source[list(FEATURES)]
    current = churn_frame(2000, seed=7, first_id=900_000)[list(FEATURES)]
    current["recency_days"] = current["recency_days"] + 30
    current["frequency"] = (current["frequency"] * 0.6).round().astype("int64")
    current_path = out / "current_sample.parquet"
    current.to_parquet(current_path, index=False)
    baseline = None
    if model:
        where = attach_baseline(model, train)
        say(f"Attached the training sample to {where} as its drift baseline.")
    else:
        baseline = str(out / "training_sample.parquet")
        train.to_parquet(baseline, index=False)
    result = run_drift(
        DriftSpec(baseline=baseline, current=str(current_path)),
        name="quickstart-drift",
        model=model,
        html_path=str(out / "drift_report.html"),
        json_path=str(out / "drift_report.json"),
    )
    say(f"Drift check: {result.summary()}")
    say(f"HTML report: {result.html_path}")
    say("Every run is recorded: flowship monitor history")
    return result
