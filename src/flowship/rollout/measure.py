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
#: a p99 from fewer answered requests is little more than the slowest one: no verdict
MIN_LATENCY_SAMPLES = 100


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
) -> Measurement:
    """Every guardrail is ``passed`` True/False, or None ("not enough data yet") when
    either variant has fewer than ``min_requests`` requests in the window: a step never
    passes by default. ``champion_window``: read the champion over another window (at
    100% it answers nothing now; its last window is the baseline)."""
    from deltalake import DeltaTable

    m = Measurement()
    for v in (candidate, champion):
        m.requests[v], m.errors[v], m.p99_ms[v] = 0, 0, None
    if DeltaTable.is_deltatable(uri):
        windows = {candidate: (since, until), champion: champion_window or (since, until)}
        _read(m, uri, deployment, candidate, champion, windows)
    enough = all(m.requests[v] >= min_requests for v in (candidate, champion))
    for g in guardrails:
        value = m.values.get(g.metric)
        passed = None if not enough or value is None else g.holds(value)
        m.results.append({**g.to_dict(), "name": g.text, "value": value, "passed": passed})
    return m


def _read(m: Measurement, uri, deployment, candidate, champion, windows) -> None:
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
            "deployment = ? AND role = 'primary' AND variant = ? "
            "AND epoch(ts) >= ? AND epoch(ts) < ?"
        )
        outputs = {}
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
    column = report.to_dict()["columns"][0]
    psi = column.get("psi")
    if psi is not None and math.isfinite(psi):
        return float(psi)
    if column.get("value_set"):  # a constant champion: the share of outputs it never gave
        return float(column["value_set"]["new_value_share"])
    return None
