"""Model performance against actuals that arrive after the predictions.

Predictions (batch output or the prediction log) are joined with actuals by id; the
report says how many predictions have an actual yet, computes classification metrics
(AUC, accuracy, precision, recall, F1, log loss, Brier score) or regression metrics
(RMSE, MAE, R²), overall, per time window and per segment, and checks thresholds
(the seed's ``auc >= 0.75`` by default for classification).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from flowship.errors import InvalidInput, UsageError

Task = Literal["auto", "classification", "regression"]
CLASSIFICATION = ("auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier")
REGRESSION = ("rmse", "mae", "r2")
# Lower is better for these; a threshold on them is a maximum.
LOWER_IS_BETTER = {"log_loss", "brier", "rmse", "mae"}
DEFAULT_THRESHOLDS = {"classification": {"auc": (">=", 0.75)}, "regression": {}}
_THRESHOLD = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
_ACTUAL = "__actual__"


@dataclass
class PerformanceReport:
    task: str
    n_predictions: int
    n_with_actuals: int
    metrics: dict[str, float | None]
    thresholds: dict[str, tuple[str, float]]
    violations: list[dict[str, Any]]
    windows: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    min_rows: int = 50
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def coverage(self) -> float:
        return self.n_with_actuals / self.n_predictions if self.n_predictions else 0.0

    @property
    def status(self) -> str:
        if self.n_with_actuals < self.min_rows:
            return "insufficient_data"
        return "alert" if self.violations else "ok"

    def summary(self) -> str:
        head = (
            f"{self.n_with_actuals} of {self.n_predictions} predictions have actuals "
            f"({self.coverage:.0%})"
        )
        if self.status == "insufficient_data":
            return f"{head}; need {self.min_rows} to judge performance."
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items() if v is not None)
        broken = "; ".join(v["message"] for v in self.violations)
        return f"{head}; {shown}." + (f" Below threshold: {broken}." if broken else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "performance",
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "task": self.task,
            "n_predictions": self.n_predictions,
            "n_with_actuals": self.n_with_actuals,
            "coverage": self.coverage,
            "metrics": self.metrics,
            "thresholds": {k: {"op": op, "value": v} for k, (op, v) in self.thresholds.items()},
            "violations": self.violations,
            "windows": self.windows,
            "segments": self.segments,
            "summary": self.summary(),
        }


def parse_threshold(text: str) -> tuple[str, tuple[str, float]]:
    """``"auc>=0.75"`` -> ``("auc", (">=", 0.75))``."""
    match = _THRESHOLD.match(text or "")
    if not match or match[1] not in CLASSIFICATION + REGRESSION:
        raise UsageError(
            f"Cannot read the threshold {text!r}.",
            f"Write METRIC>=VALUE or METRIC<=VALUE with METRIC one of "
            f"{', '.join(CLASSIFICATION + REGRESSION)}, e.g. auc>=0.75.",
        )
    return match[1], (match[2], float(match[3]))


def evaluate_performance(
    predictions: pd.DataFrame,
    actuals: pd.DataFrame,
    *,
    id_column: str,
    label_column: str | None = None,
    score_column: str | None = None,
    prediction_column: str | None = None,
    task: Task = "auto",
    time_column: str | None = None,
    window: str | None = None,
    since: str | None = None,
    segment_column: str | None = None,
    thresholds: dict[str, tuple[str, float]] | None = None,
    positive_label: Any = 1,
    min_rows: int = 50,
) -> PerformanceReport:
    """Join ``predictions`` with ``actuals`` on ``id_column`` and measure."""
    _need(predictions, "predictions", [id_column, time_column, segment_column])
    _need(actuals, "actuals", [id_column])
    label_column = label_column or _only_other(actuals, id_column, "actuals", "--label")
    _need(actuals, "actuals", [label_column])
    score_column, prediction_column = _output_columns(predictions, score_column, prediction_column)
    duplicated = int(actuals[id_column].duplicated().sum())
    if duplicated:
        raise InvalidInput(
            f"The actuals hold {duplicated} duplicated id(s) in {id_column!r}.",
            "Keep one actual per id (the latest) before monitoring performance.",
        )
    frame = predictions
    if since:
        frame = _since(frame, time_column, since)
    joined = frame.merge(
        actuals[[id_column, label_column]].rename(columns={label_column: _ACTUAL}),
        on=id_column,
        how="inner",
    )
    joined = joined[joined[_ACTUAL].notna()]
    task = _task(task, joined[_ACTUAL], score_column)
    if thresholds is None:
        thresholds = dict(DEFAULT_THRESHOLDS[task])
    measure = _measurer(task, score_column, prediction_column, positive_label)
    metrics = measure(joined) if len(joined) >= min_rows else dict.fromkeys(_names(task))
    report = PerformanceReport(
        task=task,
        n_predictions=int(frame.shape[0]),
        n_with_actuals=int(joined.shape[0]),
        metrics=metrics,
        thresholds=thresholds,
        violations=_violations(metrics, thresholds) if len(joined) >= min_rows else [],
        min_rows=min_rows,
    )
    if window:
        report.windows = _by_window(joined, time_column, window, measure)
    if segment_column:
        report.segments = [
            {"segment": _plain(key), "n": int(len(part)), "metrics": measure(part)}
            for key, part in joined.groupby(segment_column, dropna=False, sort=True)
        ]
    return report


def _need(frame: pd.DataFrame, what: str, columns: list[str | None]) -> None:
    absent = [c for c in columns if c is not None and c not in frame.columns]
    if absent:
        raise InvalidInput(
            f"The {what} have no column(s) {', '.join(map(repr, absent))}.",
            f"Their columns are: {', '.join(map(str, frame.columns[:20]))}.",
        )


def _only_other(frame: pd.DataFrame, id_column: str, what: str, option: str) -> str:
    others = [c for c in frame.columns if c != id_column]
    if len(others) != 1:
        raise UsageError(
            f"Cannot tell which column of the {what} holds the actual value "
            f"(columns: {', '.join(map(str, others[:10]))}).",
            f"Name it with {option} COLUMN.",
        )
    return others[0]


def _output_columns(
    frame: pd.DataFrame, score: str | None, prediction: str | None
) -> tuple[str | None, str | None]:
    if score is None and prediction is None:
        score = "probability" if "probability" in frame.columns else None
        prediction = "prediction" if "prediction" in frame.columns else None
        if score is None and prediction is None:
            raise UsageError(
                "The predictions have neither a 'probability' nor a 'prediction' column.",
                "Name the model output with --score COLUMN (probabilities) or "
                "--prediction COLUMN (labels or values).",
            )
    _need(frame, "predictions", [score, prediction])
    return score, prediction


def _task(task: Task, actual: pd.Series, score_column: str | None) -> str:
    if task != "auto":
        return task
    if score_column is not None:
        return "classification"
    is_float = pd.api.types.is_float_dtype(actual.dtype)
    return "regression" if is_float and actual.nunique() > 10 else "classification"


def _names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def _measurer(task: str, score: str | None, prediction: str | None, positive: Any):
    def measure(part: pd.DataFrame) -> dict[str, float | None]:
        if part.empty:
            return dict.fromkeys(_names(task))
        if task == "regression":
            return _regression(part[_ACTUAL], part[prediction or score])
        return _classification(part, score, prediction, positive)

    return measure


def _classification(
    part: pd.DataFrame, score: str | None, prediction: str | None, positive: Any
) -> dict[str, float | None]:
    from sklearn import metrics as m

    y = part[_ACTUAL].to_numpy()
    binary = set(pd.unique(y)).issubset({0, 1}) or positive in set(y)
    out: dict[str, float | None] = dict.fromkeys(CLASSIFICATION)
    if score is not None and binary:
        p = pd.to_numeric(part[score], errors="coerce").to_numpy(dtype=float)
        if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
            raise InvalidInput(
                f"The score column {score!r} holds values outside [0, 1] or missing.",
                "Point --score at the probability of the positive class.",
            )
        truth = (y == positive).astype(int)
        labels = (p >= 0.5).astype(int)
        if len(np.unique(truth)) == 2:
            out["auc"] = float(m.roc_auc_score(truth, p))
            out["log_loss"] = float(m.log_loss(truth, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]))
        out["brier"] = float(m.brier_score_loss(truth, p, pos_label=1))
    elif prediction is not None:
        labels = part[prediction].to_numpy()
        truth = y
    else:
        raise UsageError(
            "Multi-class actuals need the predicted label.", "Pass --prediction COLUMN."
        )
    if prediction is not None and binary:
        labels = (part[prediction].to_numpy() == positive).astype(int)
        truth = (y == positive).astype(int)
    average = "binary" if binary else "macro"
    out["accuracy"] = float(m.accuracy_score(truth, labels))
    for name, fn in (
        ("precision", m.precision_score),
        ("recall", m.recall_score),
        ("f1", m.f1_score),
    ):
        out[name] = float(fn(truth, labels, average=average, zero_division=0))
    return out


def _regression(actual: pd.Series, predicted: pd.Series) -> dict[str, float | None]:
    from sklearn import metrics as m

    y = pd.to_numeric(actual, errors="coerce").to_numpy(dtype=float)
    p = pd.to_numeric(predicted, errors="coerce").to_numpy(dtype=float)
    ok = ~(np.isnan(y) | np.isnan(p))
    if not ok.any():
        raise InvalidInput(
            "No numeric prediction/actual pairs to compare.",
            "Check that the prediction and label columns hold numbers.",
        )
    y, p = y[ok], p[ok]
    return {
        "rmse": float(np.sqrt(m.mean_squared_error(y, p))),
        "mae": float(m.mean_absolute_error(y, p)),
        "r2": float(m.r2_score(y, p)) if len(y) > 1 else None,
    }


def _violations(metrics: dict[str, float | None], thresholds: dict) -> list[dict[str, Any]]:
    found = []
    for name, (op, bound) in thresholds.items():
        value = metrics.get(name)
        if value is None:
            continue
        ok = {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[
            op
        ]
        if not ok:
            found.append(
                {
                    "metric": name,
                    "value": value,
                    "op": op,
                    "threshold": bound,
                    "message": f"{name} {value:.4f} (needs {op} {bound})",
                }
            )
    return found


def _times(frame: pd.DataFrame, time_column: str | None, option: str) -> pd.Series:
    if time_column is None:
        raise UsageError(f"{option} needs a time column.", "Name it with --time-column COLUMN.")
    times = pd.to_datetime(frame[time_column], errors="coerce", utc=True)
    if times.isna().all():
        raise InvalidInput(
            f"The time column {time_column!r} holds no readable timestamps.",
            "Point --time-column at a timestamp or ISO-8601 date column.",
        )
    return times


def parse_duration(text: str, option: str) -> pd.Timedelta:
    """``"30d"``, ``"12h"``: a positive duration, or a usage error naming ``option``."""
    try:
        delta = pd.Timedelta(text)
    except ValueError:
        delta = None
    if delta is None or delta <= pd.Timedelta(0):
        raise UsageError(f"Cannot read {option} {text!r}.", "Write it like 1d, 7d or 12h.")
    return delta


def _since(frame: pd.DataFrame, time_column: str | None, since: str) -> pd.DataFrame:
    times = _times(frame, time_column, "--since")
    cutoff = pd.Timestamp.now(tz="UTC") - parse_duration(since, "--since")
    return frame[times >= cutoff]


def _by_window(joined: pd.DataFrame, time_column: str | None, window: str, measure) -> list[dict]:
    delta = parse_duration(window, "--window")
    times = _times(joined, time_column, "--window")
    # Windows start at midnight of the first day, so daily and weekly windows line up.
    origin = times.min().floor("1D")
    starts = origin + ((times - origin) // delta) * delta
    rows = []
    for start, part in joined.groupby(starts, sort=True):
        rows.append(
            {
                "start": start.isoformat(),
                "end": (start + delta).isoformat(),
                "n": int(len(part)),
                "metrics": measure(part),
            }
        )
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return value.item() if hasattr(value, "item") else value
