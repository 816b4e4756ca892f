"""Baselines and production metrics attached to a model version (through the registry)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from flowship.errors import UsageError


def _version(ref: str) -> tuple[str, str, str | None]:
    from flowship.predict import resolve_ref

    resolved = resolve_ref(ref)
    if not resolved.model_name or not resolved.model_version:
        raise UsageError(
            f"{ref!r} is not a registered model version.",
            "Use models:/NAME@alias, models:/NAME/Stage or models:/NAME/VERSION.",
        )
    return resolved.model_name, resolved.model_version, resolved.run_id


def attach_baseline(ref: str, frame: pd.DataFrame) -> str:
    """Keep ``frame`` (e.g. the training sample) with the model version ``ref`` points at;
    returns ``models:/NAME/VERSION``, a source later drift checks can use."""
    from flowship.registry.baselines import log_baseline

    name, version, run_id = _version(ref)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.parquet"
        frame.to_parquet(path, index=False)
        log_baseline(name, version, run_id, path)
    return f"models:/{name}/{version}"


def download_baseline(ref: str) -> Path:
    from flowship.registry.baselines import fetch_baseline

    return fetch_baseline(*_version(ref))


def log_production_metrics(ref: str, metrics: dict[str, float | None], *, step: int) -> dict:
    """Log each metric as ``production_<name>`` on the version's run; returns what was
    logged (metrics that could not be computed are left out)."""
    from flowship.registry.baselines import log_version_metrics

    name, version, run_id = _version(ref)
    logged = {f"production_{k}": float(v) for k, v in metrics.items() if v is not None}
    if logged:
        log_version_metrics(name, version, run_id, logged, step=step)
    return {"model": name, "version": version, "metrics": logged}
