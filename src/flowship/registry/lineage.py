"""What a version's MLflow run says about where the model came from, and files kept with
a version (the model card): read and written through MLflow here, so callers above the
registry never touch MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowship._mlflow import client as mlflow_client
from flowship._mlflow import mlflow_errors


def run_details(name: str, version: str, run_id: str | None) -> dict[str, Any]:
    """The run's parameters, metrics, source tags and input datasets ({} without a run)."""
    if not run_id:
        return {}
    with mlflow_errors(model=name, version=version):
        run = mlflow_client().get_run(run_id)
    tags = run.data.tags or {}
    datasets = []
    for item in getattr(run.inputs, "dataset_inputs", None) or []:
        d = item.dataset
        datasets.append(
            {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source}
        )
    return {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name,
        "started_ms": run.info.start_time,
        "user": tags.get("mlflow.user"),
        "source_name": tags.get("mlflow.source.name"),
        "git_commit": tags.get("mlflow.source.git.commit"),
        "params": dict(sorted((run.data.params or {}).items())),
        "metrics": dict(sorted((run.data.metrics or {}).items())),
        "datasets": datasets,
    }


def attach_file(name: str, version: str, run_id: str, path: Path, *, folder: str, tag: str) -> str:
    """Log ``path`` to the version's run under ``folder`` and point version tag ``tag`` at
    it; returns the artifact path."""
    client = mlflow_client()
    artifact = f"{folder}/{path.name}"
    with mlflow_errors(model=name, version=version):
        client.log_artifact(run_id, str(path), folder)
        client.set_model_version_tag(name, version, tag, artifact)
    return artifact
