"""``flowship ab report`` and ``flowship shadow report``: experiments read from the
prediction log. Each prints a table (or ``--json``), can write ``--html FILE``, and exits
1 when the check says no (candidate worse, split broken, shadow below ``--min-agreement``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import err, print_json, print_table
from flowship.errors import UsageError

ab = typer.Typer(name="ab", help="A/B experiments judged on outcomes that arrive later.")
shadow = typer.Typer(name="shadow", help="Shadow variants compared with the primary.")
app.add_typer(ab, name="ab", no_args_is_help=True)
app.add_typer(shadow, name="shadow", no_args_is_help=True)

LogOpt = Annotated[
    str,
    typer.Option("--log", help="Prediction log (default table:prediction_log; any source)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON report.")]
HtmlOpt = Annotated[str | None, typer.Option("--html", help="Write an offline HTML report.")]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Judge as of this UTC time (ISO 8601); default now.")
]
ScoreOpt = Annotated[
    str | None, typer.Option("--score", help="Probability column (default: probability).")
]
PredictionOpt = Annotated[
    str | None, typer.Option("--prediction", help="Label column (default: prediction).")
]


@ab.command("report")
def ab_report(
    deployment: Annotated[str, typer.Argument(help="Deployment whose variants to compare.")],
    actuals: Annotated[str, typer.Option("--actuals", help="Outcomes (path, table:NAME, sql:).")],
    id_column: Annotated[str, typer.Option("--id", help="Outcome column holding the log's key.")],
    label: Annotated[str, typer.Option("--label", help="Outcome column (0/1, or a value).")],
    log: LogOpt = "table:prediction_log",
    window: Annotated[
        str, typer.Option("--window", help="Outcome window: a key counts once this old.")
    ] = "30d",
    metric: Annotated[
        str, typer.Option("--metric", help="auc, accuracy, log_loss or mean (a rate).")
    ] = "auc",
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Configured split, e.g. champion=90,challenger=10."),
    ] = None,
    champion: Annotated[str | None, typer.Option("--champion", help="Champion variant.")] = None,
    candidate: Annotated[str | None, typer.Option("--candidate", help="Candidate variant.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="False-positive rate.")] = 0.05,
    effect: Annotated[
        float | None, typer.Option("--effect", help="Effect size the test is tuned to.")
    ] = None,
    fill_missing: Annotated[
        float | None,
        typer.Option("--fill-missing", help="Outcome of a matured key without one, e.g. 0."),
    ] = None,
    gate: Annotated[
        bool, typer.Option("--gate", help="Exit 1 unless the candidate is significantly better.")
    ] = False,
    key_column: Annotated[str, typer.Option("--key-column")] = "key",
    variant_column: Annotated[str, typer.Option("--variant-column")] = "variant",
    time_column: Annotated[str, typer.Option("--time-column")] = "ts",
    score: ScoreOpt = None,
    prediction: PredictionOpt = None,
    as_of: AsOfOpt = None,
    sql_url: Annotated[str | None, typer.Option("--sql-url")] = None,
    as_json: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Is the candidate better than the champion? Per sticky key, matured outcomes only."""
    from flowship.monitoring.experiments import ab_report as build
    from flowship.monitoring.experiments import check, parse_weights
    from flowship.monitoring.experiments.units import LogColumns

    report = build(
        deployment,
        actuals=actuals,
        id_column=id_column,
        label=label,
        log=log,
        window=window,
        metric=metric,
        weights=parse_weights(weights),
        champion=champion,
        candidate=candidate,
        alpha=alpha,
        effect=effect,
        fill_missing=fill_missing,
        as_of=_as_of(as_of),
        columns=LogColumns(key_column, variant_column, time_column, score, prediction),
        sql_url=sql_url,
    )
    data = report.to_dict()
    _html(html_path, "ab", data)
    if as_json:
        print_json(data)
    else:
        _show_ab(data)
    check(report, require_better=gate)


def _show_ab(r: dict[str, Any]) -> None:
    m = r["metric"]
    srm = r["sample_ratio"]
    if srm["mismatch"]:
        say(f"SAMPLE RATIO MISMATCH: {r['summary']}")
    print_table(
        f"A/B {r['deployment']}: {r['candidate']} vs {r['champion']} ({m}, window {r['window']})",
        ["variant", "units", "matured", "pending", "no outcome", m, "interval", "split"],
        [
            [
                v["variant"],
                v["units"],
                v["matured"],
                v["pending"],
                v["no_outcome"],
                _fmt(v[m]),
                _interval(v["low"], v["high"]),
                _split(srm, v["variant"]),
            ]
            for v in r["variants"]
        ],
    )
    c = r["comparison"]
    if c:
        say(
            f"difference {_fmt(c['difference'], sign=True)} "
            f"{_interval(c['low'], c['high'], sign=True)}, always-valid p={c['p_value']:.3g}"
        )
    for note in r["notes"]:
        say(f"note: {note}")
    say(f"decision: {r['decision']}: {r['summary']}")


def _split(srm: dict[str, Any], variant: str) -> str:
    seen = srm["observed_share"].get(variant)
    want = srm["expected_share"].get(variant)
    if want is None:
        return f"{seen:.1%}" if seen is not None else ""
    return f"{seen:.1%} (weight {want:.1%})"


@shadow.command("report")
def shadow_report(
    deployment: Annotated[str, typer.Argument(help="Deployment whose shadows to compare.")],
    log: LogOpt = "table:prediction_log",
    since: Annotated[
        str | None, typer.Option("--since", help="Only requests this recent: 7d, 12h.")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="How many disagreeing rows to show.")] = 10,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Score threshold when only scores exist.")
    ] = 0.5,
    min_agreement: Annotated[
        float | None, typer.Option("--min-agreement", help="Exit 1 below this agreement rate.")
    ] = None,
    score: ScoreOpt = None,
    prediction: PredictionOpt = None,
    as_of: AsOfOpt = None,
    sql_url: Annotated[str | None, typer.Option("--sql-url")] = None,
    as_json: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Agreement, score correlation, biggest disagreements and latency of each shadow."""
    from flowship.monitoring.experiments import check_shadow
    from flowship.monitoring.experiments import shadow_report as build

    report = build(
        deployment,
        log=log,
        since=since,
        as_of=_as_of(as_of),
        top=top,
        threshold=threshold,
        score=score,
        prediction=prediction,
        min_agreement=min_agreement,
        sql_url=sql_url,
    )
    data = report.to_dict()
    _html(html_path, "shadow", data)
    if as_json:
        print_json(data)
    else:
        lat = data["primary_latency"]
        print_table(
            f"Shadows of {deployment}",
            ["shadow", "calls", "failed", "paired", "agreement", "score corr", "p50 ms", "p99 ms"],
            [["(primary)", "", "", "", "", "", _fmt(lat["p50"]), _fmt(lat["p99"])]]
            + [
                [
                    s["variant"],
                    s["shadow_calls"],
                    s["failed"],
                    s["paired"],
                    _pct(s["agreement"]),
                    _fmt(s["score_correlation"]),
                    _fmt(s["latency_ms"]["p50"]),
                    _fmt(s["latency_ms"]["p99"]),
                ]
                for s in data["shadows"]
            ],
        )
        if data["disagreements"]:
            print_table(
                "Requests that disagree most",
                ["request", "key", "shadow", "primary score", "shadow score", "labels"],
                [
                    [
                        d["request_id"],
                        d["key"],
                        d["shadow_variant"],
                        _fmt(d["primary_score"]),
                        _fmt(d["shadow_score"]),
                        f"{d['primary_label']} / {d['shadow_label']}",
                    ]
                    for d in data["disagreements"]
                ],
            )
        say(data["summary"])
    check_shadow(report)


def _html(path: str | None, kind: str, data: dict[str, Any]) -> None:
    if not path:
        return
    from flowship.monitoring.experiments.html import ab_page, shadow_page
    from flowship.monitoring.report_html import write_file

    write_file(path, ab_page(data) if kind == "ab" else shadow_page(data))
    say(f"Wrote {path}")


def say(message: str) -> None:
    """Names and intervals in brackets are data, never rich markup."""
    err.print(message, markup=False)


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"Cannot read --as-of {text!r}.", "Write an ISO 8601 time, e.g. 2026-06-30T00:00Z."
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _fmt(value: Any, *, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _interval(low: float | None, high: float | None, *, sign: bool = False) -> str:
    if low is None or high is None:
        return ""
    return f"[{_fmt(low, sign=sign)}, {_fmt(high, sign=sign)}]"
