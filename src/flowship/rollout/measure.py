"""The guardrails' values for one step: candidate against champion over the step's
window, read from the prediction log (DuckDB over the Delta table's files) and, when the
rollout names them, from the servers' ``/metrics`` (``rollout.servers``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowship.rollout.plan import SERVER_GUARDRAILS, Guardrail
from flowship.rollout.servers import Window

#: outputs sampled per variant for the output-drift guardrail
OUTPUT_SAMPLE = 20_000
#: a p99 from fewer answered requests is little more than the slowest one: no verdict
MIN_LATENCY_SAMPLES = 100
#: guardrails on the log's per-variant requests: no verdict under ``min_requests`` each
LOG_GUARDRAILS = (
    "error_rate",
    "error_rate_increase",
    "p99_latency_ms",
    "p99_latency_ratio",
    "output_psi",
)


@dataclass
class Measurement:
    """Per variant: requests, failures, p99 latency; and the guardrails' verdicts."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    p99_ms: dict[str, float | None] = field(default_factory=dict)
    values: dict[str, float | None] = field(default_factory=dict)
    #: guardrail -> why it has no verdict yet ("not enough data yet")
    pending: dict[str, str] = field(default_factory=dict)
    #: guardrail -> why it does not apply to this rollout (no shadow of the candidate)
    skipped: dict[str, str] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breached(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["passed"] is False]

    @property
    def waiting(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["passed"] is None and r["applies"]]


def log_uri(spec: Any) -> str | None:
    """Where the deployment's prediction log is (as the router writes it)."""
    return spec.log.uri if spec.log is not None else None


def measure(
    uri: str,
    deployment: str,
    *,
    candidate: str,
    champion: str,
    since: datetime,
    until: datetime,
    guardrails: list[Guardrail],
    min_requests: int,
    champion_window: tuple[datetime, datetime] | None = None,
    shadows: list[str] | None = None,
    servers: Window | str | None = None,
) -> Measurement:
    """Every guardrail is ``passed`` True/False, or None ("not enough data yet", with
    the reason in ``why``) when its numbers are too few: fewer than ``min_requests``
    requests of either variant, or paired shadow answers; a step never passes by
    default. ``champion_window``: read the champion over another window (at 100% it
    answers nothing now; its last window is the baseline). ``shadows``: the shadow
    variants that run the candidate's model (none: ``shadow_agreement`` does not apply).
    ``servers``: the counts from the servers' /metrics over the step, or why there are
    none (their guardrails wait)."""
    from deltalake import DeltaTable

    m = Measurement()
    for v in (candidate, champion):
        m.requests[v], m.errors[v], m.p99_ms[v] = 0, 0, None
    windows = {candidate: (since, until), champion: champion_window or (since, until)}
    if DeltaTable.is_deltatable(uri):
        _read(m, uri, deployment, candidate, champion, windows, shadows or [], min_requests)
    else:
        m.skipped.update(shadow_agreement="no shadow of the candidate ran")
    low = [v for v in (candidate, champion) if m.requests[v] < min_requests]
    if low:
        counts = ", ".join(f"{v} {m.requests[v]}" for v in (candidate, champion))
        for metric in LOG_GUARDRAILS:
            m.pending[metric] = f"{counts} request(s) in the log, {min_requests} needed"
    _servers(m, servers, candidate, champion, min_requests)
    for g in guardrails:
        value = m.values.get(g.metric)
        why = m.skipped.get(g.metric) or m.pending.get(g.metric)
        if why is None and value is None:
            why = "not measured yet"
        passed = None if why is not None else g.holds(value)  # type: ignore[arg-type]
        m.results.append(
            {
                **g.to_dict(),
                "name": g.text,
                "value": value,
                "passed": passed,
                "applies": g.metric not in m.skipped,
                "why": why,
            }
        )
    return m


def _servers(m: Measurement, servers, candidate: str, champion: str, min_requests: int) -> None:
    if servers is None:
        return
    if isinstance(servers, str):
        for metric in SERVER_GUARDRAILS:
            m.pending[metric] = servers
        return
    n = {v: servers.requests.get(v, 0.0) for v in (candidate, champion)}
    if any(n[v] < min_requests for v in n):
        counts = ", ".join(f"{v} {n[v]:g}" for v in n)
        for metric in SERVER_GUARDRAILS:
            m.pending[metric] = (
                f"{counts} request(s) in the servers' /metrics, {min_requests} needed"
            )
        return
    rate = {v: servers.errors.get(v, 0.0) / n[v] for v in n}
    m.values["server_error_rate_increase"] = rate[candidate] - rate[champion]
    if all(servers.answered(v) >= MIN_LATENCY_SAMPLES for v in n):
        a, b = servers.p99(candidate), servers.p99(champion)
        if a is not None and b:
            m.values["server_p99_latency_ratio"] = a / b
    else:
        m.pending["server_p99_latency_ratio"] = (
            f"fewer than {MIN_LATENCY_SAMPLES} answered requests per variant for a p99"
        )


def _read(m: Measurement, uri, deployment, candidate, champion, windows, shadows, least) -> None:
    from flowship.monitoring.experiments.units import (
        attach,
        duckdb_session,
        output_columns,
    )
    from flowship.monitoring.sources import open_source

    data = open_source(uri, role="prediction log")
    outputs = output_columns(data.schema, None, None)
    score = outputs.score_sql()
    with duckdb_session() as con:
        attach(con, "log_src", data)
        window = (
            "deployment = ? AND role = 'primary' AND variant = ? "
            "AND epoch(ts) >= ? AND epoch(ts) < ?"
        )
        outputs_of = {}
        for variant in (candidate, champion):
            start, end = windows[variant]
            params = [deployment, variant, start.timestamp(), end.timestamp()]
            n, failed, p99 = con.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE status <> 'ok'),
                    CASE WHEN count(*) FILTER (WHERE status = 'ok') >= {MIN_LATENCY_SAMPLES}
                    THEN quantile_cont(latency_ms, 0.99) FILTER (WHERE status = 'ok') END
                FROM log_src WHERE {window}""",
                params,
            ).fetchone()
            m.requests[variant], m.errors[variant], m.p99_ms[variant] = int(n), int(failed), p99
            if score is not None:
                got = con.execute(
                    f"""SELECT {score} AS s FROM log_src WHERE {window} AND status = 'ok'
                    AND {score} IS NOT NULL USING SAMPLE {OUTPUT_SAMPLE} ROWS""",
                    params,
                ).fetchnumpy()
                outputs_of[variant] = got["s"]
        _agreement(m, con, data.schema, outputs, deployment, champion, windows, shadows, least)
    rate = {v: m.errors[v] / m.requests[v] if m.requests[v] else None for v in m.requests}
    m.values["error_rate"] = rate[candidate]
    if rate[candidate] is not None and rate[champion] is not None:
        m.values["error_rate_increase"] = rate[candidate] - rate[champion]
    m.values["p99_latency_ms"] = m.p99_ms[candidate]
    a, b = m.p99_ms[candidate], m.p99_ms[champion]
    if a is not None and b:
        m.values["p99_latency_ratio"] = a / b
    m.values["output_psi"] = _output_psi(outputs_of, candidate, champion)


def _agreement(m, con, schema, outputs, deployment, champion, windows, shadows, least) -> None:
    """The candidate's model as a shadow against the champion's answers to the same
    requests, over the champion's window (the shadow report's definition: ``compare``)."""
    from flowship.monitoring.experiments.shadow import compare, rows_view

    if not shadows or "request_id" not in schema.names:
        m.skipped["shadow_agreement"] = "no shadow of the candidate ran"
        return
    if outputs.score is None and outputs.prediction is None:
        m.skipped["shadow_agreement"] = "the log has no model output to compare"
        return
    start, end = windows[champion]
    name = deployment.replace("'", "''")
    rows_view(
        con,
        schema,
        outputs,
        [
            f"deployment = '{name}'",
            f"epoch(ts) >= {start.timestamp()!r}",
            f"epoch(ts) < {end.timestamp()!r}",
        ],
    )
    found = {s: compare(con, s, champion) for s in shadows}
    few = {s: c["paired"] for s, c in found.items() if c["paired"] < least}
    if few:
        counts = ", ".join(f"{s} {n}" for s, n in few.items())
        m.pending["shadow_agreement"] = (
            f"{counts} shadow answer(s) paired with the champion's, {least} needed"
        )
        return
    m.values["shadow_agreement"] = min(c["agreement"] for c in found.values())


def _output_psi(outputs: dict, candidate: str, champion: str) -> float | None:
    """The drift rule's PSI on the one column "output" (champion as the reference)."""
    import pandas as pd

    from flowship.errors import InvalidInput
    from flowship.monitoring import check_drift

    cand, champ = outputs.get(candidate), outputs.get(champion)
    if cand is None or champ is None or len(cand) < 2 or len(champ) < 2:
        return None
    try:
        report = check_drift(pd.DataFrame({"output": champ}), pd.DataFrame({"output": cand}))
    except InvalidInput:
        return None
    column = report.to_dict()["columns"][0]
    psi = column.get("psi")
    if psi is not None and math.isfinite(psi):
        return float(psi)
    if column.get("value_set"):  # a constant champion: the share of outputs it never gave
        return float(column["value_set"]["new_value_share"])
    return None
