"""Turn a model reference into a concrete, pinned one, without loading the model.

Serving polls :func:`resolve_ref` to notice a promotion and batch pins a job to
``ResolvedRef.uri`` at start, so this must stay cheap: registry look-ups only, no
artifact download.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from flowship._mlflow import client, mlflow_errors
from flowship.errors import ModelNotFound, NotFound, UsageError, VersionNotFound
from flowship.predict.ref_syntax import FORMS as _FORMS
from flowship.predict.ref_syntax import ResolvedRef, parse_registry_ref

__all__ = ["ResolvedRef", "resolve_ref"]


def resolve_ref(ref: str) -> ResolvedRef:
    """Resolve ``ref`` against the registry (or the file system for a local directory).

    Raises ``ModelNotFound`` / ``VersionNotFound`` for an unknown model, version, alias or
    stage, ``NotFound`` for a missing run or directory and ``UsageError`` for a malformed ref.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError("The model reference is empty.", f"Use one of: {_FORMS}.")
    ref = ref.strip()
    if ref.startswith("models:/"):
        from flowship.predict.registry_db import lookup  # reads the tables; MLflow if unsure

        return lookup(ref) or _resolve_registry(ref)
    if ref.startswith("runs:/"):
        return _resolve_run(ref)
    if ref.startswith("file://"):
        return _resolve_dir(ref, Path(unquote(urlparse(ref).path)))
    if "://" in ref or ref.startswith(("models:", "runs:")):
        raise UsageError(f"Unsupported model reference {ref!r}.", f"Use one of: {_FORMS}.")
    return _resolve_dir(ref, Path(ref))


def _resolve_registry(ref: str) -> ResolvedRef:
    parsed = parse_registry_ref(ref)
    name, value = parsed.name, parsed.value
    if parsed.kind == "alias":
        mv = _by_alias(name, value)
    elif parsed.kind == "version":
        mv = _by_version(name, value)
    elif parsed.kind == "latest":
        mv = _latest(name)
    else:
        mv = _by_stage(name, value)
    return ResolvedRef.registry_version(ref, mv.name, mv.version, mv.run_id, mv.source)


def _require_model(name: str) -> None:
    with mlflow_errors(name):
        client().get_registered_model(name)


def _by_version(name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors(name, version):
            return client().get_model_version(name, version)
    except (VersionNotFound, ModelNotFound, UsageError, MlflowException):
        _require_model(name)
        raise VersionNotFound(name, version) from None


def _by_alias(name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors(name):
            return client().get_model_version_by_alias(name, alias)
    except (ModelNotFound, UsageError, MlflowException):
        _require_model(name)
        raise VersionNotFound(
            name,
            f"with alias {alias!r}",
            f"Promote one (flowship promote {name} VERSION --to {alias}) "
            f"or list its versions with: flowship versions {name}",
        ) from None


def _versions(name: str) -> list:
    _require_model(name)
    quote = '"' if "'" in name else "'"
    with mlflow_errors(name):
        return list(client().search_model_versions(f"name = {quote}{name}{quote}"))


def _by_stage(name: str, stage: str):
    # Filtering the versions ourselves avoids get_latest_versions' deprecation warning
    # on every poll; the stage is read from the same field MLflow's own resolution uses.
    found = [mv for mv in _versions(name) if mv.current_stage == stage]
    if not found:
        raise VersionNotFound(
            name,
            f"in stage {stage}",
            f"Promote one (flowship promote {name} VERSION --to {stage.lower()}) "
            f"or list its versions with: flowship versions {name}",
        )
    return max(found, key=lambda mv: int(mv.version))


def _latest(name: str):
    found = _versions(name)
    if not found:
        raise VersionNotFound(name, "(it has no versions)", "Register one first.")
    return max(found, key=lambda mv: int(mv.version))


def _resolve_run(ref: str) -> ResolvedRef:
    run_id, _, path = ref[len("runs:/") :].partition("/")
    if not run_id or not path.strip("/"):
        raise UsageError(f"Malformed model reference {ref!r}.", "Use runs:/RUN_ID/ARTIFACT_PATH.")
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors():
            client().get_run(run_id)
    except (UsageError, MlflowException):
        raise NotFound(
            f"Run {run_id!r} does not exist in the tracking store.",
            "Check the run id (mlflow runs list) or MLFLOW_TRACKING_URI.",
        ) from None
    return ResolvedRef(ref=ref, uri=ref, run_id=run_id)


def _resolve_dir(ref: str, path: Path) -> ResolvedRef:
    if not (path / "MLmodel").is_file():
        raise NotFound(
            f"No MLflow model at {str(path)!r} (no MLmodel file there).",
            f"Point at a directory saved by mlflow.*.save_model, or use one of: {_FORMS}.",
        )
    return ResolvedRef(ref=ref, uri=str(path.resolve()), source=str(path.resolve()))
