"""Model health: is what runs in production still what the team thinks it is?

Checks, each ``ok``, ``warning`` (reported, logged) or ``alert`` (exit code 1, webhook):

- ``production_version``: a version holds Production (alert if none);
- ``production_age``: it is younger than ``max_age_days`` (the seed's 90-day rule);
- ``staging_waiting``: no newer version waits in Staging (warning: consider promoting);
- ``alias_served``: every alias points at a version some deployment serves (warning):
  the deployments given (refs or serve config files), else every variant of every
  recorded deployment (``flowship deployment apply``);
- ``predictions_fresh``: each prediction table was written within ``max_silence_hours``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowship.config import get_settings
from flowship.errors import ConfigError, FlowshipError, NotFound

log = logging.getLogger(__name__)


@dataclass
class HealthCheck:
    check: str
    status: str  # ok | warning | alert | skipped
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    model: str
    checks: list[HealthCheck]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def status(self) -> str:
        states = {c.status for c in self.checks}
        return "alert" if "alert" in states else "warning" if "warning" in states else "ok"

    def summary(self) -> str:
        bad = [c.message for c in self.checks if c.status in ("alert", "warning")]
        return "; ".join(bad) if bad else f"{self.model}: all health checks passed."

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "health",
            "model": self.model,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "summary": self.summary(),
            "checks": [asdict(c) for c in self.checks],
        }


def check_health(
    model: str,
    *,
    max_age_days: float = 90,
    deployments: Sequence[str] = (),
    prediction_tables: Sequence[str] = (),
    max_silence_hours: float = 24,
    now: datetime | None = None,
) -> HealthReport:
    """Run every health check for registered model ``model``."""
    from flowship.registry import PRODUCTION, STAGING, list_versions

    now = now or datetime.now(UTC)
    versions = list_versions(model)
    prod = next((v for v in versions if v.stage == PRODUCTION), None)
    staging = next((v for v in versions if v.stage == STAGING), None)
    checks: list[HealthCheck] = []
    if prod is None:
        checks.append(
            HealthCheck(
                "production_version",
                "alert",
                f"{model} has no version in Production.",
                {"versions": len(versions)},
            )
        )
    else:
        age = (now - prod.created_at).total_seconds() / 86400
        old = age > max_age_days
        checks.append(
            HealthCheck(
                "production_age",
                "alert" if old else "ok",
                f"{model} v{prod.version} in Production is {age:.0f} days old"
                + (f" (over {max_age_days:g}); consider retraining." if old else "."),
                {"version": prod.version, "age_days": round(age, 2), "max_age_days": max_age_days},
            )
        )
    if staging is not None and (prod is None or int(staging.version) > int(prod.version)):
        checks.append(
            HealthCheck(
                "staging_waiting",
                "warning",
                f"{model} v{staging.version} waits in Staging; consider promoting it after "
                "validation.",
                {"version": staging.version},
            )
        )
    else:
        checks.append(HealthCheck("staging_waiting", "ok", "No newer version waits in Staging."))
    checks.append(_alias_check(model, versions, deployments))
    checks.extend(_freshness(t, max_silence_hours, now) for t in prediction_tables)
    return HealthReport(model=model, checks=checks, created_at=now)


def _alias_check(model: str, versions: list, deployments: Sequence[str]) -> HealthCheck:
    if not deployments:
        deployments = _recorded_refs()
    if not deployments:
        return HealthCheck(
            "alias_served",
            "skipped",
            "Not checked: no deployment is recorded (flowship deployment apply) or given "
            "(--deployment).",
        )
    from flowship.predict import resolve_ref

    served: set[str] = set()
    for deployment in deployments:
        ref = _deployment_ref(deployment)
        try:
            resolved = resolve_ref(ref)
        except FlowshipError as exc:
            log.warning("Deployment %s serves %s, which does not resolve: %s", deployment, ref, exc)
            continue
        if resolved.model_name == model and resolved.model_version:
            served.add(resolved.model_version)
    unserved = {
        alias: v.version for v in versions for alias in v.aliases if v.version not in served
    }
    if unserved:
        shown = ", ".join(f"@{a} -> v{v}" for a, v in sorted(unserved.items()))
        return HealthCheck(
            "alias_served",
            "warning",
            f"{model}: alias(es) point at versions no deployment serves: {shown}.",
            {"unserved": unserved, "served_versions": sorted(served)},
        )
    return HealthCheck(
        "alias_served",
        "ok",
        "Every alias points at a served version.",
        {"served_versions": sorted(served)},
    )


def _recorded_refs() -> list[str]:
    """The refs of every variant of every recorded deployment (weight-0 and shadow
    variants included: they are loaded and warm, one traffic change from answering)."""
    from flowship.deployments import list_deployments

    return [
        revision.spec.uri_of(variant)
        for revision in list_deployments()
        for variant in revision.spec.variants
    ]


def _deployment_ref(deployment: str) -> str:
    """A deployment is a model ref, or a deployment file whose ``ref`` field is one."""
    if deployment.endswith((".yaml", ".yml")):
        import yaml

        path = Path(deployment)
        if not path.is_file():
            raise NotFound(f"Deployment file {deployment!r} does not exist.", "Check the path.")
        try:
            body = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(path, f"not valid YAML: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            raise ConfigError(path, "has no 'ref' field", "Add ref: models:/NAME@production")
        return body["ref"]
    return deployment


def _freshness(table: str, max_silence_hours: float, now: datetime) -> HealthCheck:
    written = last_write(table)
    if written is None:
        return HealthCheck(
            "predictions_fresh",
            "alert",
            f"Prediction table {table!r} does not exist or has never been written.",
            {"table": table},
        )
    hours = (now - written).total_seconds() / 3600
    stale = hours > max_silence_hours
    return HealthCheck(
        "predictions_fresh",
        "alert" if stale else "ok",
        f"No predictions written to {table!r} for {hours:.1f} hours (limit {max_silence_hours:g})."
        if stale
        else f"{table!r} was written {hours:.1f} hours ago.",
        {"table": table, "last_write": written.isoformat(), "hours": round(hours, 2)},
    )


def last_write(table: str) -> datetime | None:
    """When ``table`` (``table:NAME``, a Delta URI/path or a file) was last written."""
    from deltalake import DeltaTable

    uri = get_settings().table_uri(table[6:]) if table.startswith("table:") else table
    try:
        if DeltaTable.is_deltatable(uri):
            history = DeltaTable(uri).history(1)
            if history and history[0].get("timestamp"):
                return datetime.fromtimestamp(history[0]["timestamp"] / 1000, UTC)
    except Exception as exc:  # an unreadable table is reported as never written
        log.warning("Cannot read the history of %s: %s", uri, exc)
        return None
    path = Path(uri)
    if path.exists():
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return None
