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
from flowship.errors import (
    FlowshipError,
    ModelNotFound,
    NotAuthenticated,
    PermissionDenied,
    Unavailable,
    UsageError,
    VersionNotFound,
)

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_fluent_lock = threading.RLock()


def tracking_uri() -> str:
    return get_settings().resolved_tracking_uri


def _shown_uri() -> str:
    """The tracking URI without any user:password@ part, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(tracking_uri())
    if parts.username or parts.password:
        return parts._replace(netloc=parts.hostname or "").geturl()
    return tracking_uri()


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
        if code == "UNAUTHENTICATED":
            raise _not_authenticated() from exc
        if code == "PERMISSION_DENIED":
            user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user"
            what = f"model {model!r}" if model is not None else "this"
            raise PermissionDenied(
                f"The MLflow server refused {user} permission to change {what}. "
                "Nothing was changed.",
                "Ask an admin of the MLflow server for EDIT or MANAGE permission on the "
                "registered model, or have a user who holds it run the command.",
            ) from exc
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


def _not_authenticated() -> NotAuthenticated:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f" for user {user!r}" if user else ""
    return NotAuthenticated(
        f"The MLflow server at {_shown_uri()} did not accept the credentials{who}.",
        "Check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN).",
    )


def authenticated_user() -> str | None:
    """The user the MLflow tracking server authenticates this process as, checked with
    the server (the credentials MLflow's client sends); None for a local store or a
    server without authentication. A wrong password is ``NotAuthenticated``."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    from mlflow.utils.credentials import get_default_host_creds

    # From the environment or ~/.mlflow/credentials, as MLflow's client reads them.
    creds = get_default_host_creds(uri)
    return _user_for(uri, (creds.username, creds.password, creds.token, creds.auth))


@lru_cache(maxsize=8)
def _user_for(uri: str, _credentials: tuple[str | None, ...]) -> str | None:
    """Asked once per process and set of credentials (the cache key includes them)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)

    def call(endpoint: str, **params):
        try:
            return http_request(
                creds, endpoint, "GET", max_retries=0, raise_on_status=False, params=params
            )
        except Exception as exc:  # requests' and MLflow's connection errors alike
            raise Unavailable(
                f"Cannot reach the MLflow tracking server at {_shown_uri()}.",
                "Check that it is running, or set MLFLOW_TRACKING_URI to a reachable store.",
            ) from exc

    # MLflow's basic-auth app answers who the caller is.
    response = call("/api/2.0/mlflow/users/current")
    if response.status_code == 401:
        raise _not_authenticated()
    if response.status_code == 200:
        try:
            return str(response.json()["user"]["username"])
        except (ValueError, KeyError, TypeError):
            pass  # not the basic-auth app's answer: fall through
    # No such endpoint: a server without authentication, or one behind a proxy that
    # authenticates. An authenticated call tells the two apart.
    username = creds.username
    if not username:
        return None
    response = call("/api/2.0/mlflow/experiments/search", max_results=1)
    if response.status_code in (401, 403):
        raise _not_authenticated()
    return username if response.status_code == 200 else None
