"""A recorded deployment's traffic for a mesh or an operator: KServe, Argo Rollouts,
Seldon Core 2.

``flowship k8s --deployment NAME`` serves the deployment with flowship's own router (one
pod runs every variant). Teams whose mesh or operator splits traffic get the same split
here, one serving container per variant (``flowship serve`` on the variant's version,
pinned when the files are written), in a folder per target:

- ``kserve/``: an InferenceService; the champion first, then the challenger as the
  canary with ``canaryTrafficPercent`` (KServe splits between the last rolled-out
  revision and the new one, so the two files are applied in order).
- ``argo/``: a Rollout, likewise champion then challenger with ``setWeight`` steps, and
  an AnalysisTemplate whose Prometheus queries read flowship's ``/metrics``.
- ``seldon/``: a Seldon ``Model`` per variant, named APP-VARIANT, reading the pinned
  version's files from the object store (MLServer's MLflow runtime serves them), then
  an Experiment over them: the candidates' weights and a shadow as its ``mirror``.

What a target cannot express is said, never approximated in silence: a target that
cannot carry the split at all is skipped with the reason, and what it drops (the
sticky key, the prediction log, ...) is a warning and a comment at the top of its files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flowship.errors import UsageError
from flowship.packaging._k8s_pod import PORT, hpa, label_value, pod_template

if TYPE_CHECKING:
    from flowship.deployments.spec import DeploymentSpec

# The metric names are serving/metrics.py's; a test reads them from a live server.
REQUESTS_METRIC = "flowship_requests_total"
LATENCY_METRIC = "flowship_request_duration_seconds"
# Seldon's agents fetch a Model's files with rclone, from the remote named by the URI's
# scheme (public gs:// works by default; a private bucket's remote comes from a Secret,
# ``--storage-secret``).
OBJECT_STORES = ("s3://", "gs://")


@dataclass(frozen=True)
class Health:
    """The AnalysisTemplate's bars: a canary fails above either."""

    max_error_rate: float = 0.01  # the share of requests answered 5xx
    max_p99_seconds: float = 1.0  # the 99th-percentile latency


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0}


def health(max_error_rate: float | None, max_p99: str | None) -> Health:
    """``--max-error-rate`` (a share in (0, 1]) and ``--max-p99`` (500ms, 1s, 2m) read
    into a :class:`Health`; the defaults for what is not given."""
    bars = Health()
    rate = bars.max_error_rate if max_error_rate is None else max_error_rate
    if not 0 < rate <= 1:  # also refuses NaN
        raise UsageError(
            f"--max-error-rate {max_error_rate!r} is not a share of requests.",
            "Give a number above 0 and at most 1, e.g. 0.01 for 1%.",
        )
    seconds = bars.max_p99_seconds
    if max_p99 is not None:
        match = _DURATION.match(max_p99)
        seconds = float(match[1]) * _UNIT[match[2]] if match else 0.0
        if seconds <= 0:
            raise UsageError(
                f"Cannot read --max-p99 {max_p99!r} as a positive duration.",
                "Write it like 500ms, 1s or 1.5s.",
            )
    return Health(max_error_rate=rate, max_p99_seconds=seconds)


@dataclass(frozen=True)
class Route:
    """One variant as a mesh sees it: a pinned model version and its share."""

    variant: str
    uri: str  # pinned: models:/NAME/3 (a later promotion does not change the pods)
    model_name: str | None
    version: str | None
    weight: float
    shadow: bool
    sample: float
    storage: str | None  # where the version's files are (the artifact store's URI)


@dataclass
class Traffic:
    """The CR files to write (path -> documents, with a comment header) and what was
    skipped or dropped."""

    files: dict[str, tuple[str, list[dict[str, Any]]]]
    skipped: dict[str, str]
    warnings: list[str]


class Unmappable(Exception):
    """The deployment's split cannot be expressed by a target (the message says why)."""


def routes(spec: DeploymentSpec) -> list[Route]:
    """Every variant of ``spec`` resolved to the version it serves now."""
    from flowship.predict.refs import resolve_ref
    from flowship.registry.versions import storage_uri

    found = []
    for name, variant in spec.variants.items():
        resolved = resolve_ref(spec.uri_of(name))
        version = resolved.model_version
        found.append(
            Route(
                variant=name,
                uri=resolved.uri,
                model_name=resolved.model_name,
                version=resolved.model_version,
                weight=variant.weight,
                shadow=variant.shadow,
                sample=variant.sample,
                storage=storage_uri(resolved.model_name, version) if version else None,
            )
        )
    return found


def traffic(
    app: str,
    spec: DeploymentSpec,
    found: list[Route],
    pod: PodParts,
    *,
    replicas: tuple[int, int],
    prometheus: str,
    bars: Health,
    storage_secret: str | None = None,
) -> Traffic:
    """The KServe, Argo Rollouts and Seldon files for ``spec`` (each target that can)."""
    result = Traffic(files={}, skipped={}, warnings=[])
    answering = sorted(
        (r for r in found if not r.shadow and r.weight > 0), key=lambda r: -r.weight
    )  # the heaviest first: the champion (stable sort keeps the file's order on ties)
    idle = [r.variant for r in found if not r.shadow and r.weight == 0]
    shadows = [r for r in found if r.shadow]
    common = []
    if spec.key:
        common.append(
            f"the sticky key {spec.key!r} (the mesh assigns requests at random, not by key)"
        )
    if spec.log:
        common.append(f"the prediction log ({spec.log.table}): no pod writes it")
    if idle:
        common.append(f"weight-0 variants kept warm ({', '.join(idle)}): not deployed")
    targets = {
        "kserve": lambda: _kserve(app, answering, shadows, pod),
        "argo": lambda: _argo(app, answering, shadows, pod, replicas, prometheus, bars),
        "seldon": lambda: _seldon(app, answering, shadows, storage_secret),
    }
    for target, build in targets.items():
        try:
            files, dropped = build()
        except Unmappable as exc:
            result.skipped[target] = str(exc)
            result.warnings.append(f"{target}/ not written: {exc}")
            continue
        lost = common + dropped
        if lost:
            result.warnings.append(f"{target}/ does not carry {'; '.join(lost)}.")
        header = "".join(f"# Not carried over from deployment {spec.name}: {x}.\n" for x in lost)
        for path, docs in files.items():
            result.files[f"{target}/{path}"] = (header, docs)
    return result


@dataclass(frozen=True)
class PodParts:
    """What every variant's container shares with the core Deployment's."""

    image: str
    config_map: str
    env: list[dict[str, Any]]
    labels: dict[str, str]


def _whole(routes: list[Route], what: str) -> None:
    for r in routes:
        if r.weight != int(r.weight):
            raise Unmappable(
                f"variant {r.variant!r} has weight {r.weight:g}; {what} is whole percent"
            )


def _serve(route: Route, app: str) -> list[str]:
    return [
        "flowship", "serve", route.uri, "--host", "0.0.0.0", "--port", str(PORT),
        "--name", app, "--poll-interval", "0",
    ]  # fmt: skip


def _variant_labels(route: Route) -> dict[str, str]:
    return {
        "flowship.io/variant": label_value(route.variant),
        "flowship.io/model": label_value(route.model_name or "model"),
        "flowship.io/version": label_value(route.version or "none"),
    }


def _dns(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-") or "x"


def _no_shadows(shadows: list[Route], target: str) -> list[str]:
    if not shadows:
        return []
    names = ", ".join(r.variant for r in shadows)
    return [f"shadow variants ({names}): {target} has no request mirroring"]


def _two_at_most(answering: list[Route], target: str, how: str) -> None:
    if len(answering) > 2:
        raise Unmappable(
            f"{target} {how}, and this deployment has {len(answering)} answering variants "
            f"({', '.join(r.variant for r in answering)})"
        )


# ------------------------------------------------------------------------- KServe


def _kserve(
    app: str, answering: list[Route], shadows: list[Route], pod: PodParts
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    _two_at_most(answering, "KServe", "splits between two revisions only (rolled out, canary)")
    _whole(answering, "canaryTrafficPercent")
    files = {"1-champion.yaml": [_isvc(app, answering[0], pod, None)]}
    if len(answering) == 2:
        files["2-challenger.yaml"] = [_isvc(app, answering[1], pod, int(answering[1].weight))]
    return files, _no_shadows(shadows, "KServe")


def _isvc(app: str, route: Route, pod: PodParts, canary: int | None) -> dict[str, Any]:
    from flowship.schedule import POD_SECURITY

    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "securityContext": POD_SECURITY,
        "containers": [
            {
                "name": "kserve-container",
                "image": pod.image,
                "command": _serve(route, app),
                "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                "envFrom": [{"configMapRef": {"name": pod.config_map}}],
                "env": pod.env,
                "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": PORT}},
                "resources": {
                    "requests": {"cpu": "250m", "memory": "512Mi"},
                    "limits": {"memory": "1Gi"},
                },
                # Knative mounts no emptyDir by default, so the root file system stays
                # writable for FLOWSHIP_HOME; everything else as in the core Deployment.
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if canary is not None:
        predictor = {"canaryTrafficPercent": canary, **predictor}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": app,
            "labels": {**pod.labels, **_variant_labels(route)},
            "annotations": {
                # Canary rollouts need Knative (KServe's serverless mode).
                "serving.kserve.io/deploymentMode": "Serverless",
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "prometheus.kserve.io/port": str(PORT),
                "prometheus.kserve.io/path": "/metrics",
            },
        },
        "spec": {"predictor": predictor},
    }


# -------------------------------------------------------------------- Argo Rollouts


def _argo(
    app: str,
    answering: list[Route],
    shadows: list[Route],
    pod: PodParts,
    replicas: tuple[int, int],
    prometheus: str,
    bars: Health,
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    _two_at_most(answering, "Argo Rollouts", "has one stable and one canary version")
    _whole(answering, "setWeight")
    template = f"{app}-health"
    low, high = replicas
    files = {
        "1-champion.yaml": [_rollout(app, answering[0], pod, low, [], None)],
        "analysistemplate.yaml": [_analysis_template(template, prometheus, bars)],
        # The core hpa.yaml scales the Deployment; this one the Rollout.
        "hpa.yaml": [hpa(app, pod.labels, low, high, ("argoproj.io/v1alpha1", "Rollout"))],
    }
    if len(answering) == 2:
        challenger = answering[1]
        # Hold at the deployment's split until promoted (kubectl argo rollouts promote),
        # with the analysis running in the background from the first step.
        steps = [{"setWeight": int(challenger.weight)}, {"pause": {}}]
        files["2-challenger.yaml"] = [
            _rollout(app, challenger, pod, low, steps, template),
        ]
    return files, _no_shadows(shadows, "a Rollout without a traffic router")


def _rollout(
    app: str,
    route: Route,
    pod: PodParts,
    replicas: int,
    steps: list[dict[str, Any]],
    analysis: str | None,
) -> dict[str, Any]:
    canary: dict[str, Any] = {"steps": steps}
    if analysis:
        canary["analysis"] = {
            "templates": [{"templateName": analysis}],
            "startingStep": 0,
            "args": [
                {"name": "model", "value": route.model_name or ""},
                {"name": "version", "value": route.version or ""},
            ],
        }
    labels = {**pod.labels, **_variant_labels(route)}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": app, "labels": pod.labels},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": pod_template(app, labels, pod.image, pod.env, command=_serve(route, app)),
            "strategy": {"canary": canary},
        },
    }


def _number(value: float) -> str:
    """``value`` without an exponent (1e-05 -> 0.00001): the condition's expr reads it."""
    return format(Decimal(repr(value)), "f")


def _analysis_template(name: str, prometheus: str, bars: Health) -> dict[str, Any]:
    who = '{model="{{args.model}}",version="{{args.version}}"}'
    errors = '{model="{{args.model}}",version="{{args.version}}",status=~"5.."}'
    window = "[5m]"
    # No requests yet gives NaN (0/0) or no sample: not a failure, so the checks pass
    # until the canary has traffic to judge.
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "model"}, {"name": "version"}],
            "metrics": [
                {
                    "name": "error-rate",
                    "interval": "1m",
                    "failureLimit": 1,
                    "successCondition": f"len(result) == 0 || isNaN(result[0]) || "
                    f"result[0] <= {_number(bars.max_error_rate)}",
                    "provider": {
                        "prometheus": {
                            "address": prometheus,
                            "query": f"sum(rate({REQUESTS_METRIC}{errors}{window})) / "
                            f"sum(rate({REQUESTS_METRIC}{who}{window}))",
                        }
                    },
                },
                {
                    "name": "p99-latency",
                    "interval": "1m",
                    "failureLimit": 1,
                    "successCondition": f"len(result) == 0 || isNaN(result[0]) || "
                    f"result[0] <= {_number(bars.max_p99_seconds)}",
                    "provider": {
                        "prometheus": {
                            "address": prometheus,
                            "query": "histogram_quantile(0.99, sum by (le) "
                            f"(rate({LATENCY_METRIC}_bucket{who}{window})))",
                        }
                    },
                },
            ],
        },
    }


# ------------------------------------------------------------------ Seldon Core 2


def _seldon(
    app: str, answering: list[Route], shadows: list[Route], secret: str | None
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    _whole(answering, "Seldon's candidate weight")
    if len(shadows) > 1:
        raise Unmappable(
            f"an Experiment has one mirror, and this deployment has {len(shadows)} shadow "
            f"variants ({', '.join(r.variant for r in shadows)})"
        )
    if len(answering) == 1 and not shadows:
        raise Unmappable("one answering variant and no shadow: there is nothing to experiment on")
    spec: dict[str, Any] = {
        "default": f"{app}-{_dns(answering[0].variant)}",
        "resourceType": "model",
        "candidates": [
            {"name": f"{app}-{_dns(r.variant)}", "weight": int(r.weight)} for r in answering
        ],
    }
    if shadows:
        (shadow,) = shadows
        percent = shadow.sample * 100
        if percent != int(percent):
            raise Unmappable(
                f"shadow {shadow.variant!r} samples {shadow.sample:g} of requests; a mirror's "
                "percent is whole"
            )
        spec["mirror"] = {"name": f"{app}-{_dns(shadow.variant)}", "percent": int(percent)}
    models = [_model(app, r, secret) for r in [*answering, *shadows]]
    return {"1-models.yaml": models, "2-experiment.yaml": [_experiment(app, spec)]}, [
        "flowship's server: MLServer's MLflow runtime serves each Model (the V2 "
        "protocol only; no /invocations, output mode or flowship metrics)"
    ]


def _model(app: str, route: Route, secret: str | None) -> dict[str, Any]:
    where = route.storage or ""
    if not route.version:
        raise Unmappable(
            f"variant {route.variant!r} serves {route.uri}, not a registry version; a "
            "Seldon Model reads a registered version's files"
        )
    if not where.startswith(OBJECT_STORES):
        raise Unmappable(
            f"variant {route.variant!r} ({route.uri}) is stored at {where}, which a cluster "
            f"cannot read; a Seldon Model needs an object store ({', '.join(OBJECT_STORES)})"
        )
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": f"{app}-{_dns(route.variant)}",
            "labels": {"app.kubernetes.io/managed-by": "flowship", **_variant_labels(route)},
        },
        # secretName: the Secret holding the rclone remote of a private bucket.
        "spec": {"storageUri": where, "requirements": ["mlflow"]}
        | ({"secretName": secret} if secret else {}),
    }


def _experiment(app: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": app, "labels": {"app.kubernetes.io/managed-by": "flowship"}},
        "spec": spec,
    }
