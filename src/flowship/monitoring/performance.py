"""Model performance against actuals that arrive after the predictions, out of core.

Predictions (batch output or the prediction log) are joined with actuals by id; the
report says how many predictions have an actual yet, computes classification metrics
(AUC, accuracy, precision, recall, F1, log loss, Brier score) or regression metrics
(RMSE, MAE, R²), overall, per time window and per segment, and checks thresholds
(the seed's ``auc >= 0.75`` by default for classification).

The join and every aggregation run in a SQL engine (``metrics_sql.py``): DuckDB on one
machine, which spills joins and sorts to disk beyond its memory cap, or Spark. Python
only ever sees sufficient statistics: sums per group, a confusion table, and for AUC the
positives and negatives at each distinct score, streamed in score order.
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
    predictions: Any,
    actuals: Any,
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
    engine: str = "local",
) -> PerformanceReport:
    """Join ``predictions`` with ``actuals`` on ``id_column`` and measure. Both are
    sources (``flowship.monitoring.sources``), DataFrames or Arrow tables."""
    from flowship.monitoring.drift._base import as_source, no_rows
    from flowship.monitoring.metrics_sql import open_engine

    predictions = as_source(predictions, "predictions")
    actuals = as_source(actuals, "actuals")
    _need(predictions.columns, "predictions", [id_column, time_column, segment_column])
    _need(actuals.columns, "actuals", [id_column])
    label_column = label_column or _only_other(actuals.columns, id_column, "actuals", "--label")
    _need(actuals.columns, "actuals", [label_column])
    score_column, prediction_column = _output_columns(
        predictions.columns, score_column, prediction_column
    )
    if window:
        parse_duration(window, "--window")
        if time_column is None:
            raise UsageError("--window needs a time column.", "Name it with --time-column COLUMN.")
    cutoff = None
    if since:
        if time_column is None:
            raise UsageError("--since needs a time column.", "Name it with --time-column COLUMN.")
        cutoff = pd.Timestamp.now(tz="UTC") - parse_duration(since, "--since")
    with open_engine(engine) as sql:
        joined = sql.join(
            predictions,
            actuals,
            id_column=id_column,
            label_column=label_column,
            columns={
                "s": score_column,
                "yhat": prediction_column,
                "t": time_column,
                "g": segment_column,
            },
            since=cutoff,
        )
        if joined.n_predictions == 0 and cutoff is None:  # an empty window, not an old one
            raise no_rows(predictions)
        if joined.duplicated:
            raise InvalidInput(
                f"The actuals hold {joined.duplicated} duplicated id(s) in {id_column!r}.",
                "Keep one actual per id (the latest) before monitoring performance.",
            )
        if time_column and (window or since) and joined.readable_times == 0:
            raise InvalidInput(
                f"The time column {time_column!r} holds no readable timestamps.",
                "Point --time-column at a timestamp or ISO-8601 date column.",
            )
        task = _task(task, sql, joined, score_column)
        if thresholds is None:
            thresholds = dict(DEFAULT_THRESHOLDS[task])
        measure = _Measure(sql, task, score_column, prediction_column, positive_label)
        overall = measure.groups(None) if joined.n >= min_rows else {}
        metrics = overall.get(0, (0, dict.fromkeys(_names(task))))[1]
        report = PerformanceReport(
            task=task,
            n_predictions=joined.n_predictions,
            n_with_actuals=joined.n,
            metrics=metrics,
            thresholds=thresholds,
            violations=_violations(metrics, thresholds) if joined.n >= min_rows else [],
            min_rows=min_rows,
        )
        if window:
            report.windows = _windows(sql, measure, parse_duration(window, "--window"))
        if segment_column:
            report.segments = [
                {"segment": _plain(key), "n": n, "metrics": values}
                for key, (n, values) in measure.groups("g").items()
            ]
    return report


def _need(columns: list[str], what: str, wanted: list[str | None]) -> None:
    absent = [c for c in wanted if c is not None and c not in columns]
    if absent:
        raise InvalidInput(
            f"The {what} have no column(s) {', '.join(map(repr, absent))}.",
            f"Their columns are: {', '.join(map(str, columns[:20]))}.",
        )


def _only_other(columns: list[str], id_column: str, what: str, option: str) -> str:
    others = [c for c in columns if c != id_column]
    if len(others) != 1:
        raise UsageError(
            f"Cannot tell which column of the {what} holds the actual value "
            f"(columns: {', '.join(map(str, others[:10]))}).",
            f"Name it with {option} COLUMN.",
        )
    return others[0]


def _output_columns(
    columns: list[str], score: str | None, prediction: str | None
) -> tuple[str | None, str | None]:
    if score is None and prediction is None:
        score = "probability" if "probability" in columns else None
        prediction = "prediction" if "prediction" in columns else None
        if score is None and prediction is None:
            raise UsageError(
                "The predictions have neither a 'probability' nor a 'prediction' column.",
                "Name the model output with --score COLUMN (probabilities) or "
                "--prediction COLUMN (labels or values).",
            )
    _need(columns, "predictions", [score, prediction])
    return score, prediction


def _task(task: Task, sql: Any, joined: Any, score_column: str | None) -> str:
    if task != "auto":
        return task
    if score_column is not None:
        return "classification"
    if joined.label_is_float and sql.scalar("SELECT count(DISTINCT y) FROM j") > 10:
        return "regression"
    return "classification"


def _names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION if task == "classification" else REGRESSION


class _Measure:
    """Metrics per group of the joined rows, from statistics the SQL engine computes."""

    def __init__(
        self, sql: Any, task: str, score: str | None, prediction: str | None, positive: Any
    ) -> None:
        self.sql, self.task, self.score, self.prediction = sql, task, score, prediction
        self.positive = positive
        if task == "classification":
            labels = sql.column("SELECT DISTINCT y FROM j WHERE y IS NOT NULL LIMIT 100001")
            self.binary = set(labels).issubset({0, 1}) or positive in set(labels)
            if not self.binary and prediction is None:
                raise UsageError(
                    "Multi-class actuals need the predicted label.", "Pass --prediction COLUMN."
                )

    def groups(self, key: str | None) -> dict[Any, tuple[int, dict[str, float | None]]]:
        """``{group: (rows, metrics)}`` for ``key`` (a column of ``j``; None: one group 0)."""
        if self.task == "regression":
            return self._regression(key)
        return self._classification(key)

    def _regression(self, key: str | None) -> dict[Any, tuple[int, dict[str, float | None]]]:
        stats = self.sql.regression_stats(key, "yhat" if self.prediction else "s")
        out = {}
        for group, rows, pairs, sse, sae, var in stats:
            if pairs == 0:
                raise InvalidInput(
                    "No numeric prediction/actual pairs to compare.",
                    "Check that the prediction and label columns hold numbers.",
                )
            sst = var * pairs
            r2 = None
            if pairs > 1:
                r2 = 1 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)
            out[group] = (
                rows,
                {"rmse": float(np.sqrt(sse / pairs)), "mae": float(sae / pairs), "r2": r2},
            )
        return out

    def _classification(self, key: str | None) -> dict[Any, tuple[int, dict[str, float | None]]]:
        sql, positive = self.sql, self.positive
        use_score = self.score is not None and self.binary
        out: dict[Any, tuple[int, dict[str, float | None]]] = {}
        if use_score:
            for group, rows, positives, bad, brier, log_loss in sql.score_stats(key, positive):
                if bad:
                    raise InvalidInput(
                        f"The score column {self.score!r} holds values outside [0, 1] or missing.",
                        "Point --score at the probability of the positive class.",
                    )
                metrics: dict[str, float | None] = dict.fromkeys(CLASSIFICATION)
                two = 0 < positives < rows
                metrics["brier"] = float(brier)
                if two:
                    metrics["log_loss"] = float(log_loss)
                out[group] = (rows, metrics)
            for group, auc in sql.auc(key, positive).items():
                if out[group][1]["log_loss"] is not None:
                    out[group][1]["auc"] = auc
        confusion = sql.confusion(
            key, positive=positive if self.binary else None, by_score=self.prediction is None
        )
        for group, cells in confusion.items():
            rows = sum(cells.values())
            metrics = out.get(group, (rows, dict.fromkeys(CLASSIFICATION)))[1]
            metrics.update(_label_metrics(cells, binary=self.binary))
            out[group] = (rows, metrics)
        return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _label_metrics(cells: dict[tuple[Any, Any], int], *, binary: bool) -> dict[str, float]:
    """Accuracy, precision, recall, F1 from (truth, label) counts, as scikit-learn
    computes them (binary on class 1, else macro over every class seen; 0 when a ratio
    has no denominator)."""
    total = sum(cells.values())
    correct = sum(n for (a, b), n in cells.items() if a == b)
    classes = [1] if binary else sorted({a for a, _ in cells} | {b for _, b in cells}, key=str)
    precision, recall, f1 = [], [], []
    for c in classes:
        tp = sum(n for (a, b), n in cells.items() if a == c and b == c)
        predicted = sum(n for (_, b), n in cells.items() if b == c)
        actual = sum(n for (a, _), n in cells.items() if a == c)
        precision.append(tp / predicted if predicted else 0.0)
        recall.append(tp / actual if actual else 0.0)
        f1.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return {
        "accuracy": correct / total if total else 0.0,
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
    }


def _windows(sql: Any, measure: _Measure, delta: pd.Timedelta) -> list[dict[str, Any]]:
    # Windows start at midnight of the first day, so daily and weekly windows line up.
    first = sql.scalar("SELECT min(t_epoch) FROM j")
    if first is None:
        return []
    origin = pd.Timestamp(first, unit="s", tz="UTC").floor("1D")
    sql.add_window(origin.timestamp(), delta.total_seconds())
    rows = []
    for index, (n, metrics) in measure.groups("w").items():
        if index is None:
            continue  # rows whose time could not be read belong to no window
        start = origin + int(index) * delta
        rows.append(
            {
                "start": start.isoformat(),
                "end": (start + delta).isoformat(),
                "n": n,
                "metrics": metrics,
            }
        )
    return rows


def _sort_key(value: Any) -> tuple[int, Any]:
    return (1, "") if value is None else (0, value)


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


def parse_duration(text: str, option: str) -> pd.Timedelta:
    """``"30d"``, ``"12h"``: a positive duration, or a usage error naming ``option``."""
    try:
        delta = pd.Timedelta(text)
    except ValueError:
        delta = None
    if delta is None or delta <= pd.Timedelta(0):
        raise UsageError(f"Cannot read {option} {text!r}.", "Write it like 1d, 7d or 12h.")
    return delta


def _plain(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return value.item() if hasattr(value, "item") else value
