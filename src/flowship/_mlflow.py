"""The one place that knows how to reach MLflow and what its exceptions mean.

``registry`` and ``predict`` get their client here and wrap MLflow calls in
``mlflow_errors()`` so that an ``MlflowException`` becomes the most specific
``FlowshipError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

from flowship.config import get_settings
from flowship.errors import FlowshipError, ModelNotFound, Unavailable, UsageError, VersionNotFound

# MLflow retries an unreachable server for minutes by default; a CLI user wants the
# answer in seconds. Respect a value the user set explicitly.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def tracking_uri() -> str:
    return get_settings().resolved_tracking_uri


@lru_cache(maxsize=8)
def _client_for(uri: str):  # -> MlflowClient
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow_errors():
        _ensure_default_experiment(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _ensure_default_experiment(uri: str) -> None:
    """flowship logs runs to experiment ``flowship``, whose artifacts live under
    FLOWSHIP_HOME (MLflow's own default would be ``./mlruns`` in the working dir)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name("flowship") is None:
        with contextlib.suppress(Exception):  # lost a creation race: it exists now
            client.create_experiment("flowship", artifact_location=get_settings().artifact_root)


def client():  # -> MlflowClient
    """An ``MlflowClient`` for the configured tracking URI (also made the process default)."""
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
