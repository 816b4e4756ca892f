"""MLflow's deployment API on flowship's recorded deployments (target ``flowship``).

Registered as the ``mlflow.deployments`` entry point ``flowship``, so MLflow's own client
and CLI manage flowship deployments::

    mlflow deployments create -t flowship --name churn -m models:/ChurnPredictor@production
    mlflow deployments predict -t flowship://127.0.0.1:5000 --name churn --input-path rows.json

create / update / delete / get / list write and read revisions (``flowship.deployments``)
exactly as ``flowship deployment apply`` and ``flowship traffic`` do; ``predict`` posts to
a running ``flowship serve --deployment NAME`` at the target's address (``flowship://HOST:PORT``,
or ``FLOWSHIP_SERVE_URL`` for a bare ``flowship``, default http://127.0.0.1:5000). Every
flowship error reaches MLflow as an ``MlflowException`` with its message and hint.

This module subclasses MLflow's ``BaseDeploymentClient``, so it imports MLflow; it is
loaded only by MLflow's plugin manager.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from flowship.errors import FlowshipError, NotFound, UsageError

DEFAULT_URL = "http://127.0.0.1:5000"
# The variant a deployment created through MLflow's API gets (MLflow's API has one model
# per deployment; a flowship deployment with more variants is updated variant by variant).
VARIANT = "main"
_CONFIG_KEYS = {"variant", "key", "reason", "log_table"}


def target_help() -> str:
    return (
        "Target 'flowship' manages flowship's recorded deployments (flowship deployment "
        "list). create/update take -m MODEL_URI and -C key=FIELD (sticky routing key), "
        "-C variant=NAME (update: which variant gets the new model), -C log_table=TABLE, "
        "-C reason=TEXT. predict needs a running 'flowship serve --deployment NAME': use "
        "the target flowship://HOST:PORT (default http://127.0.0.1:5000, or "
        "FLOWSHIP_SERVE_URL)."
    )


def run_local(target: str, name: str, model_uri: str, flavor: Any = None, config: Any = None):
    raise MlflowException(
        "Run it locally with flowship itself: flowship serve " + str(model_uri),
        error_code=INVALID_PARAMETER_VALUE,
    )


@contextlib.contextmanager
def _as_mlflow() -> Iterator[None]:
    """flowship's errors as MLflow's, with the same codes MLflow's own stores use."""
    try:
        yield
    except FlowshipError as error:
        code = RESOURCE_DOES_NOT_EXIST if isinstance(error, NotFound) else INVALID_PARAMETER_VALUE
        text = f"{error.message} {error.hint}" if error.hint else error.message
        raise MlflowException(text, error_code=code) from error


def _config(config: dict[str, Any] | None) -> dict[str, Any]:
    config = dict(config or {})
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise UsageError(
            f"Unknown config key(s) {', '.join(unknown)}.",
            f"Use: {', '.join(sorted(_CONFIG_KEYS))}.",
        )
    return config


def _described(revision: Any) -> dict[str, Any]:
    """MLflow's deployment dict (``name`` is required) with the flowship revision."""
    body = revision.to_dict()
    spec = revision.spec
    weights = spec.weights
    body["model_uri"] = spec.uri_of(max(weights, key=weights.get)) if weights else None
    body["flavor"] = "python_function"
    return body


class FlowshipDeploymentClient(BaseDeploymentClient):
    """MLflow's deployment client over ``flowship.deployments``."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self.url = _server_url(target_uri)

    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None):
        from flowship import deployments

        with _as_mlflow():
            options = _config(config)
            if _exists(name):
                raise UsageError(
                    f"Deployment {name!r} already exists.",
                    "Change it with: mlflow deployments update -t flowship --name " + name,
                )
            _flavor(flavor)
            spec = deployments.DeploymentSpec.parse(
                _spec_fields(name, model_uri, options), source="mlflow deployments create"
            )
            return _described(deployments.apply(spec, reason=options.get("reason")))

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None):
        from flowship import deployments

        with _as_mlflow():
            options = _config(config)
            _flavor(flavor)
            spec = deployments.current(name).spec
            fields = spec.to_dict()
            if model_uri is not None:
                variant = options.get("variant") or _only_answering(spec)
                if variant not in spec.variants:
                    raise UsageError(
                        f"Deployment {name!r} has no variant {variant!r}.",
                        f"Its variants: {', '.join(spec.variants)}.",
                    )
                fields["variants"][variant]["ref"] = model_uri
            if "key" in options:
                fields["key"] = options["key"]
            if "log_table" in options:
                fields["log"] = {**fields.get("log", {}), "table": options["log_table"]}
            new = deployments.DeploymentSpec.parse(fields, source="mlflow deployments update")
            return _described(deployments.apply(new, reason=options.get("reason")))

    def delete_deployment(self, name, config=None, endpoint=None):
        from flowship import deployments

        with _as_mlflow():
            options = _config(config)
            deployments.delete(name, reason=options.get("reason"))

    def list_deployments(self, endpoint=None):
        from flowship import deployments

        with _as_mlflow():
            return [_described(r) for r in deployments.list_deployments()]

    def get_deployment(self, name, endpoint=None):
        from flowship import deployments

        with _as_mlflow():
            return _described(deployments.current(name))

    def predict(self, deployment_name=None, inputs=None, endpoint=None):
        import httpx

        with _as_mlflow():
            body = _body(inputs)
            try:
                answer = httpx.post(f"{self.url}/invocations", json=body, timeout=30)
            except httpx.HTTPError as exc:
                from flowship.errors import Unavailable

                raise Unavailable(
                    f"No flowship server answers at {self.url}: {type(exc).__name__}.",
                    f"Start one: flowship serve --deployment {deployment_name} "
                    "(and use the target flowship://HOST:PORT).",
                ) from None
            if answer.status_code != 200:
                raise UsageError(
                    f"The server at {self.url} answered {answer.status_code}: {answer.text[:300]}",
                    "Check the input against the model's signature.",
                )
            return PredictionsResponse.from_json(answer.text)


def _exists(name: str) -> bool:
    from flowship import deployments

    try:
        deployments.current(name)
    except deployments.DeploymentNotFound:
        return False  # deleted: it may be created again
    return True


def _flavor(flavor: str | None) -> None:
    if flavor not in (None, "python_function"):
        raise UsageError(
            f"Flavor {flavor!r} is not served by flowship.",
            "Leave it out, or pass python_function.",
        )


def _spec_fields(name: str, model_uri: str, options: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": name,
        "variants": {VARIANT: {"ref": model_uri, "weight": 100}},
    }
    if "key" in options:
        fields["key"] = options["key"]
    if "log_table" in options:
        fields["log"] = {"table": options["log_table"]}
    return fields


def _only_answering(spec: Any) -> str:
    answering = list(spec.weights)
    if len(answering) != 1:
        raise UsageError(
            f"Deployment {spec.name!r} has {len(answering)} answering variants "
            f"({', '.join(answering)}): say which gets the new model.",
            "Pass -C variant=NAME (or --config variant=NAME).",
        )
    return answering[0]


def _body(inputs: Any) -> Any:
    if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):  # a pandas DataFrame
        import json

        return {"dataframe_split": json.loads(inputs.to_json(orient="split", index=False))}
    if isinstance(inputs, dict | list):
        return inputs
    raise UsageError(
        f"Cannot send inputs of type {type(inputs).__name__}.",
        "Pass a pandas DataFrame or an /invocations JSON body (a dict).",
    )


def _server_url(target_uri: str) -> str:
    parsed = urlparse(target_uri)
    if parsed.netloc:
        return f"http://{parsed.netloc}"
    return os.environ.get("FLOWSHIP_SERVE_URL", DEFAULT_URL).rstrip("/")
