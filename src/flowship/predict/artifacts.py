"""Fetch a model's files once and read its MLmodel metadata.

Registry versions are immutable, so their files are kept under
``$FLOWSHIP_HOME/cache/models/<name>/<version>/`` and a second load (a restart, a second
worker, a rollback) does not download again. The copy is written to a temporary folder
and renamed into place, so a crash never leaves a half-downloaded model behind. The
cache is private (``flowship.cache``), and a cached copy is used only while every file
in it has the SHA-256 recorded at download: the model's pickles are never read from a
file flowship did not write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flowship import cache
from flowship._mlflow import fluent, mlflow_errors, tracking_uri
from flowship.errors import InvalidInput
from flowship.predict.refs import ResolvedRef

log = logging.getLogger(__name__)

_MARKER = "flowship-cache.json"
MARKER = _MARKER  # public: the cache's record in a model folder, not a model file


def cache_dir(kind: str, resolved: ResolvedRef) -> Path | None:
    """``$FLOWSHIP_HOME/cache/<kind>/<name>/<version>`` for a registry version, or
    ``.../_runs/<run id>/<artifact path>`` for a run's model (both immutable); None for a
    local directory, which is read in place, and when the cache cannot be trusted."""
    private = cache.root()
    if private is None:
        return None
    root = private / kind
    if resolved.model_name is not None and resolved.model_version is not None:
        return root / quote(resolved.model_name, safe="") / resolved.model_version
    if resolved.run_id is not None and resolved.uri.startswith("runs:/"):
        artifact = resolved.uri[len("runs:/") :].partition("/")[2].strip("/")
        return root / "_runs" / quote(resolved.run_id, safe="") / quote(artifact, safe="")
    return None


def local_model_dir(resolved: ResolvedRef) -> Path:
    """A local folder holding the model's files (MLmodel and its flavors)."""
    if Path(resolved.uri).is_dir():
        return Path(resolved.uri)
    target = cache_dir("models", resolved)
    if target is not None and _valid(target, resolved):
        return target
    import mlflow

    # Stage next to the target so the final rename stays on one file system.
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=".download-", dir=target.parent if target is not None else None)
    )
    try:
        # MLflow's models:/ repository reads the process default registry in places, so
        # it is pointed at flowship's store for the download only (a host may embed us).
        with mlflow_errors(resolved.model_name, resolved.model_version), fluent():
            store = tracking_uri()
            path = Path(
                mlflow.artifacts.download_artifacts(
                    resolved.uri, dst_path=str(staging), tracking_uri=store, registry_uri=store
                )
            )
        if target is None:
            return path
        files = cache.digests(path, skip=_MARKER)
        (path / _MARKER).write_text(json.dumps({"run_id": resolved.run_id, "files": files}))
        if _valid(target, resolved):  # another process finished first: use its copy
            return target
        if target.exists():  # stale (another run id) or incomplete: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(path, target)
        except OSError:  # another process won the race; its copy is as good as ours
            if not _valid(target, resolved):
                raise
        return target
    finally:
        if target is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _valid(target: Path, resolved: ResolvedRef) -> bool:
    try:
        marker = json.loads((target / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("run_id") != resolved.run_id:
        return False
    if not (target / "MLmodel").is_file():
        return False
    problem = cache.differs(target, marker.get("files"), skip=_MARKER)
    if problem is not None:
        log.warning("The cached model in %s is not used (%s); downloading again.", target, problem)
    return problem is None


def read_mlmodel(path: Path) -> Any:  # -> mlflow.models.Model
    from mlflow.models import Model

    try:
        return Model.load(str(path / "MLmodel"))
    except Exception as exc:  # a corrupt or hand-edited MLmodel file
        raise InvalidInput(
            f"Cannot read the MLmodel file at {path}: {exc}",
            "Re-log the model with mlflow.<flavor>.log_model.",
        ) from exc
