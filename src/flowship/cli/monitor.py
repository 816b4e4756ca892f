"""``flowship monitor``: drift, performance, health, history, run FILE, attach-baseline.

Every check prints a table (or ``--json -``), can write ``--json FILE`` and ``--html
FILE``, records the run, and exits 1 when an alert fires.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._progress import rows_progress
from flowship.cli._render import print_json, print_table, say

monitor = typer.Typer(
    name="monitor",
    help="Data drift, performance against actuals, model health, alerts and reports.",
    no_args_is_help=True,
)
app.add_typer(monitor, name="monitor")

JsonOpt = Annotated[
    str | None, typer.Option("--json", help="Write the JSON report to FILE ('-' for stdout).")
]
HtmlOpt = Annotated[str | None, typer.Option("--html", help="Write the HTML report to FILE.")]
WebhookOpt = Annotated[
    str | None,
    typer.Option(
        "--webhook", envvar="FLOWSHIP_WEBHOOK", help="Slack/Teams incoming-webhook URL for alerts."
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Monitor name (history and alert dedup key).")
]
WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where", help="SQL condition on the rows read, e.g. \"prediction_date >= '2026-11-01'\"."
    ),
]
EngineOpt = Annotated[
    str,
    typer.Option("--engine", help="local (bounded memory) or spark (flowship[spark])."),
]


@monitor.command("drift")
def drift(
    current: Annotated[
        str, typer.Option("--current", help="Current data (path, table:NAME, sql:...).")
    ],
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Baseline data; default: --model's baseline.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="models:/NAME@alias whose attached baseline to use."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="default or ks (the seed's test).")
    ] = "default",
    columns: Annotated[
        str | None, typer.Option("--columns", help="Compare only these: a,b,c.")
    ] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Override a column's type: COL=categorical.")
    ] = None,
    predictions: Annotated[
        list[str] | None, typer.Option("--prediction-column", help="Columns holding model output.")
    ] = None,
    score_with_model: Annotated[
        bool, typer.Option("--score-with-model", help="Also compare --model's outputs.")
    ] = False,
    q: Annotated[float, typer.Option("--q", help="False discovery rate across columns.")] = 0.05,
    psi_warn: Annotated[float, typer.Option("--psi-warn")] = 0.1,
    psi_alert: Annotated[float, typer.Option("--psi-alert")] = 0.25,
    alpha: Annotated[float, typer.Option("--alpha", help="ks only: p-value threshold.")] = 0.05,
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Share of drifted columns for dataset drift.")
    ] = 0.5,
    bins: Annotated[int, typer.Option("--bins")] = 10,
    min_rows: Annotated[int, typer.Option("--min-rows")] = 50,
    sql_url: Annotated[
        str | None, typer.Option("--sql-url", help="Database for sql: sources.")
    ] = None,
    where: WhereOpt = None,
    baseline_where: Annotated[
        str | None,
        typer.Option("--baseline-where", help="SQL condition on the baseline (its window)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Compare each value of COLUMN on its own: variant.")
    ] = None,
    ks_exact: Annotated[
        bool | None,
        typer.Option(
            "--ks-exact/--ks-approx",
            help="ks only: always exact (refused beyond memory) or always binned; "
            "default: exact when it fits.",
        ),
    ] = None,
    engine: EngineOpt = "local",
    json_path: JsonOpt = None,
    html_path: HtmlOpt = None,
    webhook: WebhookOpt = None,
    name: NameOpt = None,
) -> None:
    """Compare current data with a baseline, column by column, in bounded memory."""
    from flowship.monitoring.runner import run_drift
    from flowship.monitoring.specs import DriftSpec

    if not baseline and not model:
        raise typer.BadParameter("give --baseline PATH or --model models:/NAME@alias")
    if score_with_model and not model:
        raise typer.BadParameter("--score-with-model needs --model models:/NAME@alias")
    spec = _spec(
        DriftSpec,
        baseline=baseline,
        current=current,
        method=method,
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        column_types=_pairs(types or []),
        prediction_columns=predictions or None,
        score_with_model=score_with_model,
        q=q,
        psi_warn=psi_warn,
        psi_alert=psi_alert,
        alpha=alpha,
        drift_share=drift_share,
        bins=bins,
        min_rows=min_rows,
        sql_url=sql_url,
        where=where,
        baseline_where=baseline_where,
        by=by,
        engine=engine,
        ks_mode="auto" if ks_exact is None else ("exact" if ks_exact else "approx"),
    )
    with rows_progress("drift") as on_rows:
        result = run_drift(
            spec,
            name=name or f"drift:{model or current}"[:200],
            model=model,
            webhook=webhook,
            json_path=_file(json_path),
            html_path=html_path,
            on_rows=on_rows,
        )
    report = result.reports["drift"]
    if json_path == "-":
        print_json(result.to_dict())
    else:
        rows = [
            [
                c["name"],
                c["kind"],
                c["status"],
                _fmt(c.get("p_value_adjusted") if c["test"] == "chi2" else c.get("p_value")),
                _fmt(c.get("psi")),
                _fmt(c.get("wasserstein_normalized")),
                _fmt(c.get("jensen_shannon")),
                f"{_pct(c.get('missing_rate_reference'))} -> {_pct(c.get('missing_rate_current'))}",
                c.get("reason") or "",
            ]
            for c in report["columns"]
        ]
        p_label = "adj. p" if report["method"] == "default" else "p"
        print_table(
            f"Drift ({report['method']}): {report['n_reference']} baseline vs "
            f"{report['n_current']} current rows",
            ["column", "kind", "status", p_label, "PSI", "Wasserstein", "JS", "missing", "note"],
            rows,
        )
    _finish(result)


@monitor.command("performance")
def performance(
    predictions: Annotated[
        str, typer.Option("--predictions", help="Predictions (path, table:NAME, sql:...).")
    ],
    actuals: Annotated[str, typer.Option("--actuals", help="Actuals that arrived later.")],
    id_column: Annotated[str, typer.Option("--id", help="Column joining the two.")],
    label: Annotated[str | None, typer.Option("--label", help="Actual value column.")] = None,
    score: Annotated[str | None, typer.Option("--score", help="Probability column.")] = None,
    prediction: Annotated[
        str | None, typer.Option("--prediction", help="Label/value column.")
    ] = None,
    task: Annotated[
        str, typer.Option("--task", help="auto, classification or regression.")
    ] = "auto",
    time_column: Annotated[str | None, typer.Option("--time-column")] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Metrics per window: 1d, 7d, 12h.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only predictions this recent: 30d.")
    ] = None,
    segment: Annotated[
        str | None, typer.Option("--segment", help="Metrics per value of COLUMN.")
    ] = None,
    thresholds: Annotated[
        list[str] | None, typer.Option("--threshold", help="e.g. auc>=0.75 (the default).")
    ] = None,
    positive_label: Annotated[str, typer.Option("--positive-label")] = "1",
    model: Annotated[
        str | None, typer.Option("--model", help="Model version to log metrics to.")
    ] = None,
    log_mlflow: Annotated[
        bool, typer.Option("--log-mlflow", help="Log production_<metric> to --model's run.")
    ] = False,
    min_rows: Annotated[int, typer.Option("--min-rows")] = 50,
    sql_url: Annotated[str | None, typer.Option("--sql-url")] = None,
    where: WhereOpt = None,
    actuals_where: Annotated[
        str | None, typer.Option("--actuals-where", help="SQL condition on the actuals.")
    ] = None,
    engine: EngineOpt = "local",
    json_path: JsonOpt = None,
    html_path: HtmlOpt = None,
    webhook: WebhookOpt = None,
    name: NameOpt = None,
) -> None:
    """Join predictions with actuals and measure the model (out of core, with DuckDB)."""
    from flowship.monitoring.runner import run_performance
    from flowship.monitoring.specs import PerformanceSpec

    if log_mlflow and not model:
        raise typer.BadParameter("--log-mlflow needs --model models:/NAME@alias")
    spec = _spec(
        PerformanceSpec,
        predictions=predictions,
        actuals=actuals,
        id=id_column,
        label=label,
        score=score,
        prediction=prediction,
        task=task,
        time_column=time_column,
        window=window,
        since=since,
        segment=segment,
        thresholds=thresholds or None,
        positive_label=int(positive_label)
        if positive_label.lstrip("-").isdigit()
        else positive_label,
        log_to_mlflow=log_mlflow,
        min_rows=min_rows,
        sql_url=sql_url,
        where=where,
        actuals_where=actuals_where,
        engine=engine,
    )
    result = run_performance(
        spec,
        name=name or f"performance:{model or predictions}"[:200],
        model=model,
        webhook=webhook,
        json_path=_file(json_path),
        html_path=html_path,
    )
    report = result.reports["performance"]
    if json_path == "-":
        print_json(result.to_dict())
    else:
        rows = [[k, _fmt(v)] for k, v in report["metrics"].items()]
        print_table(
            f"Performance ({report['task']}): {report['n_with_actuals']} of "
            f"{report['n_predictions']} predictions have actuals",
            ["metric", "value"],
            rows,
        )
        for w in report["windows"]:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in w["metrics"].items() if v is not None)
            say(f"window {w['start']}: n={w['n']} {shown}")
    _finish(result)


@monitor.command("health")
def health(
    model: Annotated[str, typer.Argument(help="Model name or models:/NAME@production.")],
    max_age_days: Annotated[float, typer.Option("--max-age-days")] = 90,
    deployments: Annotated[
        list[str] | None,
        typer.Option(
            "--deployment",
            help="A served ref or serve config (repeatable); default: the recorded deployments.",
        ),
    ] = None,
    tables: Annotated[
        list[str] | None,
        typer.Option("--table", help="Prediction table to check for fresh writes (repeatable)."),
    ] = None,
    max_silence_hours: Annotated[float, typer.Option("--max-silence-hours")] = 24,
    json_path: JsonOpt = None,
    html_path: HtmlOpt = None,
    webhook: WebhookOpt = None,
    name: NameOpt = None,
) -> None:
    """Production age, a newer Staging version, unserved aliases, stale prediction tables."""
    from flowship.monitoring.runner import model_name, run_health
    from flowship.monitoring.specs import HealthSpec

    spec = _spec(
        HealthSpec,
        max_age_days=max_age_days,
        deployments=deployments or [],
        prediction_tables=tables or [],
        max_silence_hours=max_silence_hours,
    )
    result = run_health(
        spec,
        model=model_name(model),
        name=name,
        webhook=webhook,
        json_path=_file(json_path),
        html_path=html_path,
    )
    if json_path == "-":
        print_json(result.to_dict())
    else:
        report = result.reports["health"]
        print_table(
            f"Health of {report['model']}",
            ["check", "status", "detail"],
            [[c["check"], c["status"], c["message"]] for c in report["checks"]],
        )
    _finish(result)


@monitor.command("run")
def run(
    file: Annotated[str, typer.Argument(help="A kind: monitor YAML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Run every check of a monitor file (what `flowship schedule` runs)."""
    from flowship.monitoring.runner import run_monitor_file

    result = run_monitor_file(file)
    if as_json:
        print_json(result.to_dict())
    else:
        print_table(
            f"Monitor {result.monitor}",
            ["check", "status", "summary"],
            [[k, r["status"], r["summary"]] for k, r in result.reports.items()],
        )
    _finish(result)


@monitor.command("history")
def history(
    name: Annotated[str | None, typer.Option("--name", help="Only this monitor.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="drift, performance, health or monitor.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recorded monitor runs, newest first."""
    from flowship.store.monitor_runs import list_runs

    runs = list_runs(monitor=name, kind=kind, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "monitor": r.monitor,
                    "kind": r.kind,
                    "status": r.status,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "model": r.model,
                    "n_alerts": r.n_alerts,
                    "alerts": r.alerts,
                    "summary": r.summary,
                    "html_path": r.html_path,
                    "json_path": r.json_path,
                }
                for r in runs
            ]
        )
        return
    if not runs:
        say(
            "No monitor runs recorded yet. "
            "Run one: flowship monitor drift --baseline ... --current ..."
        )
    print_table(
        None,
        ["started (UTC)", "monitor", "kind", "status", "alerts", "summary"],
        [
            [
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.monitor,
                r.kind,
                r.status,
                r.n_alerts,
                r.summary[:100],
            ]
            for r in runs
        ],
    )


@monitor.command("attach-baseline")
def attach_baseline(
    model: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @alias, /Stage).")],
    data: Annotated[str, typer.Argument(help="The baseline sample (path, table:NAME, sql:...).")],
    columns: Annotated[str | None, typer.Option("--columns", help="Keep only a,b,c.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was attached.")] = False,
) -> None:
    """Keep a baseline sample with a model version, for `monitor drift --model`."""
    from flowship.monitoring.baseline import attach_baseline as attach
    from flowship.monitoring.sources import load_frame

    keep = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    frame = load_frame(data, role="baseline", columns=keep)
    where = attach(model, frame)
    if as_json:
        print_json({"model": str(where), "rows": frame.shape[0], "columns": list(frame.columns)})
        return
    say(f"Attached a baseline of {frame.shape[0]} rows x {frame.shape[1]} columns to {where}.")


def _spec(cls: Any, **fields: Any) -> Any:
    """Validate options with the job file's own model, so both give the same messages."""
    from pydantic import ValidationError

    from flowship._validation import describe
    from flowship.errors import UsageError

    try:
        return cls(**fields)
    except ValidationError as exc:
        problems = describe(exc, name=lambda where: f"option {where.replace('_', '-')!r}")
        raise UsageError(f"{problems}.", "See flowship monitor COMMAND --help.") from None


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        column, sep, kind = item.partition("=")
        if not sep or not column.strip():
            raise typer.BadParameter(f"{item!r}: write COLUMN=numerical or COLUMN=categorical")
        pairs[column.strip()] = kind.strip()
    return pairs


def _file(path: str | None) -> str | None:
    return None if path in (None, "-") else path


def _finish(result: Any) -> None:
    from flowship.errors import AlertFired

    for outcome in result.alerts:
        if outcome["delivery"] == "failed":
            say(f"webhook delivery failed for {outcome['key']}: {outcome['error']}")
    if result.html_path:
        say(f"HTML report: {result.html_path}")
    if result.json_path:
        say(f"JSON report: {result.json_path}")
    say(result.summary())
    if result.fired:
        keys = ", ".join(a["key"] for a in result.alerts[:5])
        raise AlertFired(
            f"Monitor {result.monitor!r} raised {len(result.alerts)} alert(s): {keys}.",
            f"See the report, or the run in: flowship monitor history --name '{result.monitor}'",
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
