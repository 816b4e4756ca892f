"""``shadow_report``: how a shadow variant's answers compare with the primary's on the
same requests (paired by request id in the prediction log), and how fast each was."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowship.errors import CheckFailed, InvalidInput, UsageError
from flowship.monitoring.experiments.units import (
    attach,
    duckdb_session,
    output_columns,
    require,
    where,
)
from flowship.monitoring.sources import open_source

DEFAULT_LOG = "table:prediction_log"
#: a shadow's answers paired with the primary answer to the same request
PAIRS = """FROM rows s JOIN rows p ON p.request_id = s.request_id
    AND p.role = 'primary' AND p.ok WHERE s.role = 'shadow' AND s.ok"""
MAX_TOP = 1000


@dataclass
class ShadowReport:
    deployment: str
    since: str | None
    as_of: str
    threshold: float
    shadows: list[dict[str, Any]]
    primary_latency: dict[str, float | None]
    disagreements: list[dict[str, Any]]
    status: str
    """ok, low_agreement or no_data."""
    summary: str
    min_agreement: float | None = None
    notes: list[str] = field(default_factory=list)
    kind: str = "shadow"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def shadow_report(
    deployment: str,
    *,
    log: str = DEFAULT_LOG,
    since: str | None = None,
    as_of: datetime | None = None,
    top: int = 10,
    threshold: float = 0.5,
    score: str | None = None,
    prediction: str | None = None,
    min_agreement: float | None = None,
    sql_url: str | None = None,
) -> ShadowReport:
    """Pair every shadow answer with the primary answer to the same request."""
    from flowship.monitoring.performance import parse_duration

    if not 1 <= top <= MAX_TOP:
        raise UsageError(f"--top {top} is out of range.", f"Use 1 to {MAX_TOP}.")
    if not (math.isfinite(threshold) and 0 < threshold < 1):
        raise UsageError(f"--threshold {threshold} is out of range.", "Use a value in (0, 1).")
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise UsageError(f"--min-agreement {min_agreement} is out of range.", "Use 0 to 1.")
    now = as_of or datetime.now(UTC)
    data = open_source(log, role="prediction log", sql_url=sql_url)
    schema = data.schema
    require(schema, ["request_id", "role", "variant", "ts"], "prediction log", log)
    require(schema, [score, prediction], "prediction log", log)
    outputs = output_columns(schema, score, prediction)
    if outputs.score is None and outputs.prediction is None:
        raise InvalidInput(
            f"The prediction log ({log}) has neither a 'probability' nor a 'prediction' column.",
            "Name the model output with --score COLUMN or --prediction COLUMN.",
        )
    # A view takes no parameters: the values are written in as literals.
    clauses = [f"epoch(ts) <= {now.timestamp()!r}"]
    if "deployment" in schema.names:
        clauses.append("deployment = '" + deployment.replace("'", "''") + "'")
    if since:
        start = now.timestamp() - parse_duration(since, "--since").total_seconds()
        clauses.append(f"epoch(ts) >= {start!r}")
    with duckdb_session() as con:
        attach(con, "log_src", data)
        rows_view(con, schema, outputs, clauses, threshold)
        primary = _latency(con, "role = 'primary' AND ok")
        n_primary = con.execute("SELECT count(*) FROM rows WHERE role = 'primary'").fetchone()[0]
        if not n_primary:
            raise InvalidInput(
                f"The prediction log ({log}) has no requests for deployment {deployment!r}"
                + (f" in the last {since}." if since else "."),
                "Check the deployment name, --since and the log source (--log).",
            )
        shadows = []
        for variant, calls, failed in con.execute(
            """SELECT variant, count(*), count(*) FILTER (WHERE NOT ok) FROM rows
            WHERE role = 'shadow' GROUP BY 1 ORDER BY 1"""
        ).fetchall():
            shadows.append(
                {
                    "variant": variant,
                    "shadow_calls": int(calls),
                    "failed": int(failed),
                    **compare(con, variant),
                    "latency_ms": _latency(
                        con, "role = 'shadow' AND ok AND variant = ?", [variant]
                    ),
                }
            )
        order = "abs(p.score - s.score) DESC" if outputs.score else "(p.label <> s.label) DESC"
        rows = con.execute(
            f"""SELECT s.request_id, p.key, p.ts, p.variant, s.variant, p.score, s.score,
                p.label, s.label {PAIRS} ORDER BY {order}, s.request_id LIMIT {int(top)}"""
        ).fetchall()
    disagreements = [
        {
            "request_id": r[0],
            "key": r[1],
            "ts": r[2].isoformat() if hasattr(r[2], "isoformat") else str(r[2]),
            "primary_variant": r[3],
            "shadow_variant": r[4],
            "primary_score": r[5],
            "shadow_score": r[6],
            "primary_label": r[7],
            "shadow_label": r[8],
        }
        for r in rows
        if (r[5] is not None and r[6] is not None and r[5] != r[6]) or r[7] != r[8]
    ]
    report = ShadowReport(
        deployment=deployment,
        since=since,
        as_of=now.isoformat(),
        threshold=threshold,
        shadows=shadows,
        primary_latency=primary,
        disagreements=disagreements,
        status="ok",
        summary="",
        min_agreement=min_agreement,
    )
    _judge(report, int(n_primary))
    return report


def rows_view(
    con: Any, schema: Any, outputs: Any, clauses: list[str], threshold: float = 0.5
) -> None:
    """The temp view ``rows`` over ``log_src`` (the log's rows that ``clauses`` keep) that
    the comparisons read: one score and one label per answer, ``ok`` when it answered."""
    latency = "CAST(latency_ms AS DOUBLE)" if "latency_ms" in schema.names else "NULL"
    ok = "lower(CAST(status AS VARCHAR)) IN ('ok', 'success', '200')"
    ok = ok if "status" in schema.names else "TRUE"
    s = outputs.score_sql() or "NULL"
    label = outputs.label_sql(threshold=threshold)
    key = "CAST(key AS VARCHAR)" if "key" in schema.names else "NULL"
    con.execute(
        f"""CREATE TEMP VIEW rows AS SELECT request_id, {key} AS key,
            CAST(variant AS VARCHAR) AS variant, role, ts, {s} AS score, {label} AS label,
            {latency} AS latency, {ok} AS ok
        FROM log_src{where(clauses)}"""
    )


def compare(con: Any, shadow: str, primary: str | None = None) -> dict[str, Any]:
    """How often the shadow ``shadow`` agreed with the primary answer to the same request
    (of the primary variant ``primary`` only, when given): the one definition of
    agreement, for this report and the rollout's ``shadow_agreement`` guardrail."""
    only = " AND p.variant = ?" if primary is not None else ""
    n, agree, corr, mad = con.execute(
        f"""SELECT count(*), avg(CAST(p.label = s.label AS DOUBLE)),
            corr(p.score, s.score), avg(abs(p.score - s.score))
        {PAIRS} AND s.variant = ?{only}""",
        [shadow] if primary is None else [shadow, primary],
    ).fetchone()
    return {
        "paired": int(n),
        "agreement": agree,
        "score_correlation": None if corr is None or math.isnan(corr) else corr,
        "mean_abs_score_diff": mad,
    }


def check(report: ShadowReport) -> None:
    """Exit 1 (``CheckFailed``) when a shadow agreed less often than ``min_agreement``."""
    if report.status == "low_agreement":
        raise CheckFailed(report.summary)


def _latency(con: Any, condition: str, params: list | None = None) -> dict[str, float | None]:
    row = con.execute(
        f"""SELECT quantile_cont(latency, 0.5), quantile_cont(latency, 0.95),
            quantile_cont(latency, 0.99) FROM rows WHERE {condition}""",
        params or [],
    ).fetchone()
    return {"p50": row[0], "p95": row[1], "p99": row[2]}


def _judge(report: ShadowReport, n_primary: int) -> None:
    paired = [s for s in report.shadows if s["paired"]]
    if not paired:
        report.status = "no_data"
        report.summary = (
            f"No shadow answers to compare among {n_primary} primary request(s) of "
            f"{report.deployment!r}."
        )
        return
    parts = []
    for s in paired:
        corr = s["score_correlation"]
        corr_text = f", score correlation {corr:.3f}" if corr is not None else ""
        parts.append(
            f"{s['variant']}: agrees on {s['agreement']:.1%} of {s['paired']} requests{corr_text}"
        )
    low = [
        s
        for s in paired
        if report.min_agreement is not None and s["agreement"] < report.min_agreement
    ]
    if low:
        report.status = "low_agreement"
        parts.append(f"below the required {report.min_agreement:.1%}")
    report.summary = "; ".join(parts) + "."
