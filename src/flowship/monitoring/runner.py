"""One monitor run: compute the reports, raise and deliver alerts, write the JSON and
HTML reports, and record the run in flowship's database."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowship.errors import FlowshipError, InvalidInput, UsageError
from flowship.monitoring import report_html
from flowship.monitoring.alerts import Alert, check_webhook, dispatch
from flowship.monitoring.specs import DriftSpec, HealthSpec, MonitorSpec, PerformanceSpec, load_spec
from flowship.store import monitor_runs

log = logging.getLogger(__name__)
OnRows = Callable[[int], None]
"""Progress: called with the rows of every batch read."""


@dataclass
class MonitorResult:
    monitor: str
    run_id: str
    kind: str
    status: str
    reports: dict[str, dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    json_path: str | None = None
    html_path: str | None = None

    @property
    def fired(self) -> bool:
        """True when an alert fired (even one already delivered on an earlier run)."""
        return bool(self.alerts)

    def summary(self) -> str:
        return " | ".join(r["summary"] for r in self.reports.values())

    def to_dict(self) -> dict[str, Any]:
        head = {"monitor": self.monitor, "run_id": self.run_id, "alerts": self.alerts}
        if len(self.reports) == 1:
            # A single check's report keeps its own fields at the top level.
            return {**next(iter(self.reports.values())), **head}
        return {"kind": "monitor", "status": self.status, **head, **self.reports}


def run_drift(
    spec: DriftSpec,
    *,
    name: str,
    model: str | None = None,
    webhook: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    on_rows: OnRows | None = None,
) -> MonitorResult:
    return _run(name, model, webhook, json_path, html_path, drift=spec, on_rows=on_rows)


def run_performance(
    spec: PerformanceSpec,
    *,
    name: str,
    model: str | None = None,
    webhook: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    on_rows: OnRows | None = None,
) -> MonitorResult:
    return _run(name, model, webhook, json_path, html_path, performance=spec, on_rows=on_rows)


def run_health(
    spec: HealthSpec,
    *,
    model: str,
    name: str | None = None,
    webhook: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
) -> MonitorResult:
    return _run(name or f"health:{model}", model, webhook, json_path, html_path, health=spec)


def run_spec(spec: MonitorSpec, *, on_rows: OnRows | None = None) -> MonitorResult:
    from flowship.config import get_settings

    return _run(
        spec.name,
        spec.model,
        spec.webhook or get_settings().webhook,
        spec.report.json_path,
        spec.report.html,
        drift=spec.drift,
        performance=spec.performance,
        health=spec.health,
        on_rows=on_rows,
    )


def run_monitor_file(path: str | Path, *, on_rows: OnRows | None = None) -> MonitorResult:
    """Run a ``kind: monitor`` file (what ``flowship schedule`` calls for such files)."""
    return run_spec(load_spec(path), on_rows=on_rows)


def _run(
    name: str,
    model: str | None,
    webhook: str | None,
    json_path: str | None,
    html_path: str | None,
    *,
    drift: DriftSpec | None = None,
    performance: PerformanceSpec | None = None,
    health: HealthSpec | None = None,
    on_rows: OnRows | None = None,
) -> MonitorResult:
    check_webhook(webhook)  # refuse a bad URL before any work
    if not name or len(name) > 200 or not name.isprintable():
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise UsageError(
            f"Monitor name {shown!r} must be 1 to 200 printable characters.",
            "Pass a short --name such as churn-daily.",
        )
    started = datetime.now(UTC)
    kinds = [
        k for k, v in (("drift", drift), ("performance", performance), ("health", health)) if v
    ]
    try:
        reports, alerts = _checks(model, drift, performance, health, started, on_rows)
    except FlowshipError as error:
        _record_failure(name, kinds, model, started, error)
        raise
    outcomes = dispatch(name, alerts, webhook=webhook)
    kind = next(iter(reports)) if len(reports) == 1 else "monitor"
    result = MonitorResult(
        monitor=name,
        run_id=uuid.uuid4().hex,
        kind=kind,
        status=_status(reports, outcomes),
        reports=reports,
        alerts=outcomes,
        json_path=json_path,
        html_path=html_path,
    )
    if json_path:
        report_html.write_file(json_path, json.dumps(result.to_dict(), indent=2, default=str))
    if html_path:
        history = _history(name) if performance else []
        title = f"flowship monitor: {name}"
        report_html.write_file(
            html_path, report_html.render(list(reports.values()), title=title, history=history)
        )
    monitor_runs.record_run(
        monitor_runs.RunRecord(
            id=result.run_id,
            monitor=name,
            kind=kind,
            status=result.status,
            started_at=started,
            finished_at=datetime.now(UTC),
            summary=result.summary()[:2000],
            alerts=outcomes,
            report=json.loads(json.dumps(result.to_dict(), default=str)),
            model=model[:300] if model else None,
            json_path=json_path,
            html_path=html_path,
        )
    )
    log.info("Monitor %s run %s: %s", name, result.run_id, result.status)
    return result


def _checks(
    model: str | None,
    drift: DriftSpec | None,
    performance: PerformanceSpec | None,
    health: HealthSpec | None,
    started: datetime,
    on_rows: OnRows | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Alert]]:
    reports: dict[str, dict[str, Any]] = {}
    alerts: list[Alert] = []
    if drift:
        report = _drift(drift, model, on_rows)
        reports["drift"] = report
        alerts += _drift_alerts(report)
    if performance:
        report = _performance(performance, model, started, on_rows)
        reports["performance"] = report
        alerts += [
            Alert(f"performance:{v['metric']}", f"Performance: {v['message']}.")
            for v in report["violations"]
        ]
    if health:
        report = _health(health, model)
        reports["health"] = report
        alerts += [
            Alert(f"health:{c['check']}:{c['details'].get('table', '')}".rstrip(":"), c["message"])
            for c in report["checks"]
            if c["status"] == "alert"
        ]
    return reports, alerts


def _record_failure(
    name: str, kinds: list[str], model: str | None, started: datetime, error: FlowshipError
) -> None:
    """A run that could not finish is still history (status ``error``, with why)."""
    try:
        monitor_runs.record_run(
            monitor_runs.RunRecord(
                id=uuid.uuid4().hex,
                monitor=name,
                kind=kinds[0] if len(kinds) == 1 else "monitor",
                status="error",
                started_at=started,
                finished_at=datetime.now(UTC),
                summary=error.message[:2000],
                alerts=[],
                report={"error": error.to_dict()},
                model=model[:300] if model else None,
            )
        )
    except FlowshipError:  # the database itself is the problem: the original error says more
        log.warning("Could not record the failed run of monitor %s", name)


def _drift(spec: DriftSpec, model: str | None, on_rows: OnRows | None) -> dict[str, Any]:
    from flowship.monitoring.drift import METHODS
    from flowship.monitoring.drift.columns import PREDICTION_NAMES
    from flowship.monitoring.prediction_log import feature_columns, is_prediction_log
    from flowship.monitoring.sources import open_source

    baseline = spec.baseline or model
    reference = open_source(
        baseline, role="baseline", sql_url=spec.sql_url, where=spec.baseline_where
    )
    current = open_source(spec.current, role="current", sql_url=spec.sql_url, where=spec.where)
    columns, outputs = spec.columns, spec.prediction_columns
    if columns is None and is_prediction_log(current.columns):
        # The log's own columns (ids, times, latency) are not the model's inputs.
        columns = [c for c in feature_columns(current.columns) if c in reference.columns]
        outputs = outputs or ["output", *PREDICTION_NAMES]
    if spec.score_with_model:
        if spec.engine == "spark":
            raise UsageError(
                "--score-with-model scores on this machine.", "Drop --engine spark for it."
            )
        if not model:
            raise InvalidInput("Scoring with the model needs --model.", "Pass --model REF.")
        from flowship.monitoring.model_outputs import scored_sources

        reference, current, added = scored_sources(model, reference, current)
        outputs = [*(outputs or []), *added]
        columns = [*columns, *added] if columns else None
    params: dict[str, Any] = {
        "columns": columns,
        "column_types": spec.column_types,
        "prediction_columns": outputs,
        "drift_share": spec.drift_share,
        "min_rows": spec.min_rows,
        "engine": spec.engine,
        "on_rows": on_rows,
    }
    if spec.method == "ks":
        params.update(alpha=spec.alpha, mode=spec.ks_mode)
    else:
        params.update(q=spec.q, psi_warn=spec.psi_warn, psi_alert=spec.psi_alert, bins=spec.bins)
    method = METHODS[spec.method]
    if spec.by:
        from flowship.monitoring.groups import drift_by

        report = drift_by(spec.by, reference, current, lambda: method(**params))
    else:
        report = method(**params).fit_score(reference, current).to_dict()
    report["baseline"], report["current"] = reference.label(), current.label()
    report["engine"] = spec.engine
    return report


def _drift_alerts(report: dict[str, Any]) -> list[Alert]:
    alerts = [
        # Keys fit the dedup table (300 characters) whatever the column names.
        Alert(f"drift:column:{c['name']}"[:300], f"Drift in column {c['name']!r} ({_effect(c)}).")
        for c in report["columns"]
        if c["drifted"]
    ]
    if report["dataset_drift"]:
        alerts.insert(0, Alert("drift:dataset", f"Dataset drift: {report['summary']}"))
    return alerts


def _effect(column: dict[str, Any]) -> str:
    if column["test"] == "value_set":
        return f"constant baseline, new values {column['value_set']['new_values']}"
    if column["test"] == "ks":
        return f"KS p={column['p_value']:.3g}"
    return f"PSI {column['psi']:.3f}, adjusted p={column['p_value_adjusted']:.3g}"


def _performance(
    spec: PerformanceSpec, model: str | None, started: datetime, on_rows: OnRows | None
) -> dict[str, Any]:
    from flowship.monitoring.performance import evaluate_performance, parse_threshold
    from flowship.monitoring.sources import open_source

    thresholds = dict(parse_threshold(t) for t in spec.thresholds) if spec.thresholds else None
    predictions = open_source(
        spec.predictions, role="predictions", sql_url=spec.sql_url, where=spec.where
    )
    actuals = open_source(
        spec.actuals, role="actuals", sql_url=spec.sql_url, where=spec.actuals_where
    )
    report = evaluate_performance(
        predictions,
        actuals,
        id_column=spec.id,
        label_column=spec.label,
        score_column=spec.score,
        prediction_column=spec.prediction,
        task=spec.task,
        time_column=spec.time_column,
        window=spec.window,
        since=spec.since,
        segment_column=spec.segment,
        thresholds=thresholds,
        positive_label=spec.positive_label,
        min_rows=spec.min_rows,
        engine=spec.engine,
    ).to_dict()
    report["predictions"], report["actuals"] = predictions.label(), actuals.label()
    report["engine"] = spec.engine
    if spec.log_to_mlflow and model and report["status"] != "insufficient_data":
        from flowship.monitoring.baseline import log_production_metrics

        report["mlflow"] = log_production_metrics(
            model, report["metrics"], step=int(started.timestamp())
        )
    return report


def _health(spec: HealthSpec, model: str | None) -> dict[str, Any]:
    from flowship.monitoring.health import check_health

    return check_health(
        model_name(model or ""),
        max_age_days=spec.max_age_days,
        deployments=spec.deployments,
        prediction_tables=spec.prediction_tables,
        max_silence_hours=spec.max_silence_hours,
    ).to_dict()


def model_name(model: str) -> str:
    """``models:/NAME@alias`` / ``models:/NAME/Stage`` / ``NAME`` -> ``NAME``."""
    name = model.removeprefix("models:/").split("@")[0].split("/")[0].strip()
    if not name:
        raise InvalidInput(
            f"Cannot tell the model name from {model!r}.", "Pass NAME or models:/NAME@alias."
        )
    return name


def _status(reports: dict[str, dict[str, Any]], alerts: list[dict[str, Any]]) -> str:
    if alerts:
        return "alert"
    states = {r["status"] for r in reports.values()}
    for status in ("warn", "warning"):
        if status in states:
            return "warn"
    if states == {"insufficient_data"}:
        return "insufficient_data"
    return "ok"


def _history(name: str) -> list[dict[str, Any]]:
    """Earlier performance results of this monitor, oldest first, for the chart."""
    points = []
    for run in reversed(monitor_runs.list_runs(monitor=name, limit=30, with_report=True)):
        perf = run.report.get("performance", run.report if run.kind == "performance" else None)
        if perf and perf.get("metrics"):
            points.append({"at": run.started_at.isoformat(), "metrics": perf["metrics"]})
    return points
