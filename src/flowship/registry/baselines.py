"""Monitoring data kept with a model version in MLflow: a baseline sample and the
performance measured in production.

The baseline (e.g. the training or evaluation sample) is a Parquet artifact of the
version's run, named by the version tag ``flowship.baseline``, so a drift check needs
only ``--model models:/NAME@production``. Production metrics (``production_auc``, ...)
are logged to the same run, one step per monitor run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flowship._mlflow import client as mlflow_client
from flowship._mlflow import mlflow_errors, tracking_uri
from flowship.config import get_settings
from flowship.errors import NotFound, UsageError

log = logging.getLogger(__name__)
TAG = "flowship.baseline"
ARTIFACT_DIR = "flowship_baseline"


def log_baseline(name: str, version: str, run_id: str | None, path: Path) -> str:
    """Attach the Parquet file ``path`` to version ``version`` of ``name``; returns the
    artifact path recorded in the ``flowship.baseline`` tag."""
    _need_run(name, version, run_id)
    client = mlflow_client()
    artifact = f"{ARTIFACT_DIR}/{path.name}"
    with mlflow_errors(model=name, version=version):
        client.log_artifact(run_id, str(path), ARTIFACT_DIR)
        client.set_model_version_tag(name, version, TAG, artifact)
    log.info("Attached baseline %s to %s version %s", artifact, name, version)
    return artifact


def fetch_baseline(name: str, version: str, run_id: str | None) -> Path:
    """Download the baseline attached to the version; ``NotFound`` if there is none."""
    import mlflow

    _need_run(name, version, run_id)
    client = mlflow_client()
    with mlflow_errors(model=name, version=version):
        tags = client.get_model_version(name, version).tags or {}
    artifact = tags.get(TAG)
    if not artifact:
        raise NotFound(
            f"Model {name!r} version {version} has no baseline attached.",
            f"Attach one: flowship monitor attach-baseline models:/{name}/{version} DATA.parquet",
        )
    target = get_settings().home_dir / "cache" / "baselines" / name / version
    target.mkdir(parents=True, exist_ok=True)
    with mlflow_errors(model=name, version=version):
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(target), tracking_uri=tracking_uri()
        )
    return Path(local)


def log_version_metrics(
    name: str, version: str, run_id: str | None, metrics: dict[str, float], *, step: int
) -> None:
    """Log ``metrics`` (already prefixed, e.g. ``production_auc``) to the version's run."""
    import time

    from mlflow.entities import Metric

    _need_run(name, version, run_id)
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    with mlflow_errors(model=name, version=version):
        mlflow_client().log_batch(run_id, metrics=batch)


def _need_run(name: str, version: str, run_id: str | None) -> None:
    if not run_id:
        raise UsageError(
            f"Model {name!r} version {version} has no MLflow run to keep monitoring data in.",
            "Register versions from a run (flowship register, or mlflow.<flavor>.log_model).",
        )
