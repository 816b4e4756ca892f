"""The guardrails' values for one step: candidate against champion over the step's
window, read from the prediction log (DuckDB over the Delta table's files)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowship.rollout.plan import Guardrail

#: outputs sampled per variant for the output-drift guardrail
OUTPUT_SAMPLE = 20_000


@dataclass
class Measurement:
    """Per variant: requests, failures, p99 latency; and the guardrails' verdicts."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    p99_ms: dict[str, float | None] = field(default_factory=dict)
    values: dict[str, float | None] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breached(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["passed"] is False]

    @property
    def waiting(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["passed"] is None]


def log_uri(spec: Any) -> str | None:
    """Where the deployment's prediction log is (as the router writes it)."""
    from flowship.config import get_settings

    if spec.log is None:
        return None
    table = spec.log.table
    return table if ("/" in table or "://" in table) else get_settings().table_uri(table)


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
) -> Measurement:
    """Every guardrail is ``passed`` True/False, or None ("not enough data yet") when
    either variant has fewer than ``min_requests`` requests in the window: a step never
    passes by default."""
    from deltalake import DeltaTable

    m = Measurement()
    for v in (candidate, champion):
        m.requests[v], m.errors[v], m.p99_ms[v] = 0, 0, None
    if DeltaTable.is_deltatable(uri):
        _read(m, uri, deployment, candidate, champion, since, until)
    enough = all(m.requests[v] >= min_requests for v in (candidate, champion))
    for g in guardrails:
        value = m.values.get(g.metric)
        passed = None if not enough or value is None else g.holds(value)
        m.results.append({**g.to_dict(), "name": g.text, "value": value, "passed": passed})
    return m


def _read(m: Measurement, uri, deployment, candidate, champion, since, until) -> None:
    from flowship.monitoring.experiments.units import (
        attach,
        duckdb_session,
        output_columns,
    )
    from flowship.monitoring.sources import scan

    data = scan(uri, role="prediction log")
    score = output_columns(data.schema, None, None).score_sql()
    with duckdb_session() as con:
        attach(con, "log_src", data)
        window = (
            "deployment = ? AND role = 'primary' AND variant IN (?, ?) "
            "AND epoch(ts) >= ? AND epoch(ts) < ?"
        )
        params = [deployment, candidate, champion, since.timestamp(), until.timestamp()]
        for variant, n, failed, p99 in con.execute(
            f"""SELECT variant, count(*), count(*) FILTER (WHERE status <> 'ok'),
                quantile_cont(latency_ms, 0.99) FILTER (WHERE status = 'ok')
            FROM log_src WHERE {window} GROUP BY 1""",
            params,
        ).fetchall():
            m.requests[variant], m.errors[variant], m.p99_ms[variant] = int(n), int(failed), p99
        outputs = {}
        if score is not None:
            for variant in (candidate, champion):
                got = con.execute(
                    f"""SELECT {score} AS s FROM log_src WHERE {window} AND variant = ?
                    AND status = 'ok' AND {score} IS NOT NULL USING SAMPLE {OUTPUT_SAMPLE} ROWS""",
                    [*params, variant],
                ).fetchnumpy()
                outputs[variant] = got["s"]
    rate = {v: m.errors[v] / m.requests[v] if m.requests[v] else None for v in m.requests}
    m.values["error_rate"] = rate[candidate]
    if rate[candidate] is not None and rate[champion] is not None:
        m.values["error_rate_increase"] = rate[candidate] - rate[champion]
    m.values["p99_latency_ms"] = m.p99_ms[candidate]
    a, b = m.p99_ms[candidate], m.p99_ms[champion]
    if a is not None and b:
        m.values["p99_latency_ratio"] = a / b
    m.values["output_psi"] = _output_psi(outputs, candidate, champion)


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
    psi = report.to_dict()["columns"][0].get("psi")
    return None if psi is None or not math.isfinite(psi) else float(psi)
