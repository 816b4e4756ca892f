"""Listing models and versions, and registering new versions."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowship._mlflow import client as mlflow_client
from flowship._mlflow import fluent, mlflow_errors
from flowship.errors import InvalidInput, UsageError, VersionNotFound
from flowship.registry._state import check_name, check_version
from flowship.registry._types import ALIASES, PRODUCTION, STAGING, ModelInfo, VersionInfo
from flowship.registry.sync import ModelState, locked

log = logging.getLogger(__name__)
EXPERIMENT = "flowship"


def list_versions(name: str) -> list[VersionInfo]:
    """Every version of ``name``, oldest first, with its stage, aliases and run metrics."""
    with locked(check_name(name)) as state:
        return [_info(state, v) for v in state.observed]


def get_version(name: str, version: str | int) -> VersionInfo:
    """One version of ``name``; ``VersionNotFound`` if it does not exist."""
    version = check_version(name, version)
    with locked(check_name(name)) as state:
        if version not in state.observed:
            raise VersionNotFound(name, version)
        return _info(state, version)


def storage_uri(name: str, version: str | int) -> str:
    """Where version ``version`` of ``name`` keeps its files: the artifact store's URI
    (``s3://...``, a local path, ...), not the registry's ``source`` (MLflow 3 records
    a ``models:/m-...`` logged-model id there)."""
    with mlflow_errors(name, str(version)):
        return mlflow_client().get_model_version_download_uri(name, str(version))


def list_models() -> list[ModelInfo]:
    """Every registered model with its newest version and its stage holders."""
    client = mlflow_client()
    with mlflow_errors():
        names = sorted(m.name for m in _search_models(client))
    models = []
    for name in names:
        with locked(name) as state:
            latest = max(state.observed, key=int) if state.observed else None
            updated = max((o.created_at for o in state.observed.values()), default=None)
            description = state.observed[latest].mv.description if latest else None
            models.append(
                ModelInfo(
                    name=name,
                    latest_version=latest,
                    production=state.holder(PRODUCTION),
                    staging=state.holder(STAGING),
                    versions=len(state.observed),
                    updated_at=updated,
                    description=description,
                )
            )
    return models


def _search_models(client) -> list:
    found, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def _info(state: ModelState, version: str) -> VersionInfo:
    seen = state.observed[version]
    stage = state.stages[version]
    aliases = [a for a in seen.aliases if a not in ALIASES.values()]
    if stage in ALIASES:
        aliases = sorted([*aliases, ALIASES[stage]])
    return VersionInfo(
        name=state.name,
        version=version,
        stage=stage,
        aliases=aliases,
        created_at=seen.created_at,
        run_id=seen.mv.run_id or None,
        source=seen.mv.source or "",
        metrics=_run_metrics(seen.mv.run_id),
        description=seen.mv.description or None,
        tags=dict(seen.mv.tags or {}),
    )


def _run_metrics(run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        with mlflow_errors():
            return dict(mlflow_client().get_run(run_id).data.metrics)
    except UsageError:  # the run was deleted; the version still exists
        return {}


def register(
    source: str,
    name: str,
    *,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> VersionInfo:
    """Register a new version of ``name`` from ``runs:/RUN/PATH``, ``models:/...``, a
    ``file://`` URI or a local MLflow model directory (copied into flowship's store)."""
    import mlflow

    check_name(name)
    source = str(source).strip()
    is_uri = source.startswith(("runs:/", "models:/"))
    uri = source if is_uri else _log_local_model(source)
    client = mlflow_client()
    try:
        with _registering(name), mlflow_errors(), fluent():
            mv = mlflow.register_model(uri, name, tags=tags)
    except UsageError as exc:
        raise UsageError(
            f"Cannot register {source!r}: {exc.message}",
            "Pass runs:/<run_id>/<path>, models:/<name>/<version> or a local "
            "MLflow model directory (one with an MLmodel file).",
        ) from exc
    with mlflow_errors(model=name, version=mv.version):
        if description:
            client.update_model_version(name, mv.version, description=description)
    log.info("Registered %s version %s from %s", name, mv.version, source)
    return get_version(name, mv.version)


@contextlib.contextmanager
def _registering(name: str) -> Iterator[None]:
    """Around an MLflow call that registers a version: MLflow's progress prints go to
    the log (only the CLI prints), and if the call fails after MLflow created the
    registered model, the empty model is deleted again so nothing half-made remains."""
    client = mlflow_client()
    with mlflow_errors():
        existed = bool(client.search_registered_models(f"name='{name}'"))
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stderr(chatter):
            yield
    except BaseException:
        if not existed:
            with contextlib.suppress(Exception):
                if not client.search_model_versions(f"name='{name}'"):
                    client.delete_registered_model(name)
        raise
    finally:
        for line in chatter.getvalue().splitlines():
            log.debug("mlflow: %s", line)


def _log_local_model(source: str) -> str:
    """Copy a local MLflow model directory into a run, so the registry never points
    at a folder that may be moved or deleted; returns the run's model URI."""
    import mlflow

    path = Path(source.removeprefix("file://")) if source.startswith("file://") else Path(source)
    if not path.is_dir():
        raise UsageError(
            f"Model source {source!r} is not a directory, a runs:/ or a models:/ URI.",
            "Pass runs:/<run_id>/<path>, models:/<name>/<version> or a local MLflow model "
            "directory (one with an MLmodel file).",
        )
    if not (path / "MLmodel").is_file():
        raise UsageError(
            f"{path} is not an MLflow model directory: it has no MLmodel file.",
            "Save the model with mlflow.<flavor>.save_model(model, path) first.",
        )
    with mlflow_errors(), fluent(), _flowship_run() as run:
        mlflow.log_artifacts(str(path), "model")
    return f"runs:/{run.info.run_id}/model"


def _flowship_run():
    import mlflow

    client = mlflow_client()
    with mlflow_errors():
        experiment = client.get_experiment_by_name(EXPERIMENT)
    return mlflow.start_run(experiment_id=experiment.experiment_id)


def register_estimator(
    name: str,
    estimator: Any,
    input_example: Any,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> VersionInfo:
    """Log a fitted scikit-learn ``estimator`` with a signature inferred from
    ``input_example`` (a non-empty DataFrame) to experiment ``flowship``, and register
    it as a new version of ``name``. ``metrics`` and ``params`` go on the run."""
    import mlflow
    from mlflow.models import infer_signature

    check_name(name)
    example = _check_estimator(estimator, input_example)
    try:
        sample = example.head(100)
        with warnings.catch_warnings():
            # MLflow's hint about integer columns is advice for notebooks, not an error.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            signature = infer_signature(sample, estimator.predict(sample))
    except Exception as exc:  # the estimator cannot predict on its own example
        raise InvalidInput(
            f"The estimator cannot predict on the input example: {exc}",
            "Pass an input example with the columns the estimator was fitted on.",
        ) from exc
    with _registering(name), mlflow_errors(), fluent(), _flowship_run() as run:
        if params:
            mlflow.log_params(params)
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=signature,
            input_example=example.head(5),
            registered_model_name=name,
            pip_requirements=_requirements(),
            **_serialization(estimator),
        )
    version = info.registered_model_version
    if description or tags:
        with mlflow_errors(model=name, version=version):
            if description:
                mlflow_client().update_model_version(name, version, description=description)
            for key, value in (tags or {}).items():
                mlflow_client().set_model_version_tag(name, version, key, str(value))
    log.info("Registered %s version %s from run %s", name, version, run.info.run_id)
    return get_version(name, version)


def _check_estimator(estimator: Any, input_example: Any):
    import pandas as pd
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(estimator, "predict"):
        raise InvalidInput(
            f"{type(estimator).__name__} is not a scikit-learn estimator (it has no predict).",
            "Pass a fitted scikit-learn estimator or pipeline.",
        )
    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as exc:
        raise InvalidInput(
            f"The {type(estimator).__name__} estimator is not fitted.",
            "Call estimator.fit(X, y) before registering it.",
        ) from exc
    if isinstance(input_example, dict):
        input_example = pd.DataFrame(input_example)
    if not isinstance(input_example, pd.DataFrame) or input_example.empty:
        raise InvalidInput(
            "The input example must be a non-empty pandas DataFrame with named columns.",
            "Pass a few training rows, e.g. X_train.head().",
        )
    return input_example


def _serialization(estimator: Any) -> dict[str, Any]:
    """MLflow releases that save scikit-learn models with skops by default take the
    trusted types; older ones pickle and do not know the parameter."""
    import inspect

    import mlflow

    if "skops_trusted_types" in inspect.signature(mlflow.sklearn.log_model).parameters:
        return {"skops_trusted_types": skops_trusted_types(estimator)}
    return {}


def skops_trusted_types(estimator: Any) -> list[str]:
    """The types MLflow's default (skops) format must be told to trust when loading.

    The caller hands us an estimator it built itself, so the types inside it are the
    ones it trusts; recording them lets every loader use the safe format."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))


def _requirements() -> list[str]:
    """Pinned from what is installed: MLflow's own inference loads the model in a
    subprocess, which costs seconds per registration."""
    from importlib.metadata import version

    packages = ("mlflow", "scikit-learn", "numpy", "pandas", "skops")
    return [f"{pkg}=={version(pkg)}" for pkg in packages]
