"""The one place that knows how to reach MLflow and what its exceptions mean.

``registry`` and ``predict`` get their client here and wrap MLflow calls in
``mlflow_errors()`` so that an ``MlflowException`` becomes the most specific
``FlowshipError``.

flowship may be embedded in a program with its own MLflow settings, so it changes no
process-wide MLflow state: its client names its store explicitly, downloads pass the
URI, and the few fluent calls that only read the process default (``register_model``,
``start_run``, ``log_model``) run inside ``fluent()``, which puts the host's tracking
and registry URIs (and their environment variables) back afterwards. Only the CLI,
which owns its process, shortens MLflow's HTTP retries (``cli.main``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from functools import lru_cache

from flowship.config import get_settings
from flowship.errors import FlowshipError, ModelNotFound, Unavailable, UsageError, VersionNotFound

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_fluent_lock = threading.RLock()


def tracking_uri() -> str:
    return get_settings().resolved_tracking_uri


@lru_cache(maxsize=8)
def _client_for(uri: str):  # -> MlflowClient
    from mlflow import MlflowClient

    with mlflow_errors():
        _ensure_default_experiment(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def fluent() -> Iterator[None]:
    """MLflow's fluent API (``mlflow.register_model``, ``start_run``, ``log_model``,
    ``models.get_model_info``) aimed at flowship's store for the block; the host's
    tracking and registry URIs and their environment variables are restored after.
    One block at a time: the fluent API reads process-wide state."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    uri = tracking_uri()
    with _fluent_lock:
        saved_env = {name: os.environ.get(name) for name in _URI_VARIABLES}
        saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
        saved_registry = getattr(registry_utils, "_registry_uri", None)
        tracking_utils.set_tracking_uri(uri)
        registry_utils.set_registry_uri(uri)
        try:
            yield
        finally:
            tracking_utils.set_tracking_uri(saved_tracking)
            registry_utils.set_registry_uri(saved_registry)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _ensure_default_experiment(uri: str) -> None:
    """flowship logs runs to experiment ``flowship``, whose artifacts live under
    FLOWSHIP_HOME (MLflow's own default would be ``./mlruns`` in the working dir)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name("flowship") is None:
        with contextlib.suppress(Exception):  # lost a creation race: it exists now
            client.create_experiment("flowship", artifact_location=get_settings().artifact_root)


def client():  # -> MlflowClient
    """An ``MlflowClient`` for the configured tracking URI (tracking and registry)."""
    return _client_for(tracking_uri())


@contextlib.contextmanager
def mlflow_errors(model: str | None = None, version: object = None) -> Iterator[None]:
    """Translate MLflow's exceptions raised inside the block into flowship errors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except FlowshipError:
        raise
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        text = str(exc.message if hasattr(exc, "message") else exc).splitlines()[0]
        if code == "RESOURCE_DOES_NOT_EXIST" and model is not None:
            if version is not None and "version" in text.lower():
                raise VersionNotFound(model, version) from exc
            raise ModelNotFound(model) from exc
        if code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST"):
            raise UsageError(text) from exc
        if "connect" in text.lower() or "max retries" in text.lower():
            raise Unavailable(
                f"Cannot reach the MLflow tracking server at {tracking_uri()}.",
                "Check that it is running, or set MLFLOW_TRACKING_URI to a reachable store.",
            ) from exc
        raise FlowshipError(text) from exc
    except (ConnectionError, OSError) as exc:
        raise Unavailable(
            f"Cannot reach the MLflow tracking store at {tracking_uri()}: {exc}.",
            "Check that it is running, or set MLFLOW_TRACKING_URI to a reachable store.",
        ) from exc
