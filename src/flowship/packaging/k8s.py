"""``flowship k8s REF``: the manifests that run a build-image container on Kubernetes.

Deployment (readiness, liveness and startup probes on the V2 health endpoints, resources,
Prometheus scrape annotations, a non-root read-only container, a preStop drain), Service,
HorizontalPodAutoscaler, PodDisruptionBudget, a ConfigMap for settings (credentials only
ever as ``secretKeyRef`` to a Secret the user creates), the batch CronJobs of any job
files given, and a ``kustomization.yaml`` listing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowship.errors import UsageError
from flowship.packaging._k8s_pod import PORT, hpa, label_value, pod_template, secret_env
from flowship.packaging._output import check_folder, write_folder
from flowship.packaging.credentials import refuse_credentials
from flowship.packaging.k8s_traffic import PodParts, Route, health, routes, traffic

if TYPE_CHECKING:
    from flowship.deployments.spec import DeploymentSpec

KIND = "k8s"
PROMETHEUS = "http://prometheus.monitoring.svc:9090"  # the AnalysisTemplate's default
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Manifests:
    path: Path
    app: str
    image: str
    files: list[str]
    model_name: str | None
    model_version: str | None
    cronjobs: list[str] = field(default_factory=list)
    deployment: str | None = None
    revision: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why not written
    warnings: list[str] = field(default_factory=list)


def app_name(model_name: str | None, given: str | None = None) -> str:
    """A DNS-1123 label for the workload: ``given``, else from the model name."""
    if given is not None:
        if not _DNS.match(given) or len(given) > 52:
            raise UsageError(
                f"--name {given!r} is not a valid Kubernetes name.",
                "Use lower-case letters, digits and '-', at most 52 characters.",
            )
        return given
    slug = re.sub(r"[^a-z0-9-]+", "-", (model_name or "model").lower()).strip("-")[:52]
    return slug.strip("-") or "model"


def k8s_manifests(
    ref: str | None,
    out: Path,
    *,
    deployment: str | None = None,
    image: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    replicas: int = 2,
    max_replicas: int | None = None,
    secret: str | None = None,
    env: dict[str, str] | None = None,
    jobs: list[Path] | None = None,
    cron: str | None = None,
    prometheus: str = PROMETHEUS,
    max_error_rate: float | None = None,
    max_p99: str | None = None,
    storage_secret: str | None = None,
) -> Manifests:
    """Write the manifests for serving ``ref``, or the recorded ``deployment`` (then
    also its traffic as KServe, Argo Rollouts and Seldon resources), to ``out``."""
    import yaml

    from flowship.packaging.image import image_name
    from flowship.schedule import cronjob_manifest, plan_entries

    if (ref is None) == (deployment is None):
        raise UsageError(
            "Give a model ref or --deployment NAME, not both."
            if ref
            else "Give a model ref or --deployment NAME.",
            "Example: flowship k8s models:/churn@production -o deploy/churn, or "
            "flowship k8s --deployment churn -o deploy/churn --secret churn-secrets",
        )
    check_folder(Path(out), KIND)
    if deployment is None and (max_error_rate, max_p99) != (None, None):
        raise UsageError(
            "--max-error-rate and --max-p99 set the Argo canary analysis of --deployment.",
            "Drop them, or write a recorded deployment: --deployment NAME.",
        )
    bars = health(max_error_rate, max_p99)
    if not 1 <= replicas <= 1000:
        raise UsageError(f"--replicas {replicas} is out of range.", "Use 1 to 1000.")
    top = max_replicas if max_replicas is not None else max(replicas * 4, replicas + 1)
    if not replicas <= top <= 1000:
        raise UsageError(
            f"--max-replicas {top} is below --replicas {replicas}.", "Use a larger maximum."
        )
    if deployment is None and storage_secret is not None:
        raise UsageError(
            "--storage-secret names the Secret of --deployment's Seldon Models.",
            "Drop it, or write a recorded deployment: --deployment NAME.",
        )
    names = (("--namespace", namespace), ("--secret", secret), ("--storage-secret", storage_secret))
    for label, value in names:
        if value is not None and (not _DNS.match(value) or len(value) > 63):
            raise UsageError(f"{label} {value!r} is not a valid Kubernetes name.", _DNS_HINT)
    refuse_credentials("--env", env or {})
    if deployment is not None:
        served = _served_deployment(deployment, secret, env or {})
    else:
        served = _served_ref(str(ref))
    app = app_name(served.app_source, name)
    tag = image or image_name(served.model_name, served.model_version)
    entries = plan_entries(list(jobs), cron=cron) if jobs else []
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "flowship",
    }
    pod_env = secret_env(secret, served.required_secrets)
    docs: dict[str, list[dict[str, Any]]] = {
        "configmap.yaml": [_config_map(app, labels, env or {})],
        "deployment.yaml": [
            _deployment(app, {**labels, **served.labels}, tag, replicas, pod_env, served.command)
        ],
        "service.yaml": [_service(app, labels)],
        "hpa.yaml": [hpa(app, labels, replicas, top)],
        "pdb.yaml": [_pdb(app, labels)],
    }
    cron_files: list[str] = []
    for entry in entries:
        job_docs = list(yaml.safe_load_all(cronjob_manifest(entry, image=tag, secret=secret)))
        file = f"cronjob-{job_docs[1]['metadata']['name']}.yaml"
        if file in docs:
            raise UsageError(
                f"Two job files give the CronJob name {file[8:-5]!r}.", "Rename one of them."
            )
        docs[file] = job_docs
        cron_files.append(file)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(docs),
    }
    if namespace:
        kustomization["namespace"] = namespace
    extra: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    skipped: dict[str, str] = {}
    warnings = list(served.warnings)
    if served.spec is not None:
        parts = PodParts(image=tag, config_map=f"{app}-config", env=pod_env, labels=labels)
        found = traffic(
            app,
            served.spec,
            served.routes,
            parts,
            replicas=(replicas, top),
            prometheus=prometheus,
            bars=bars,
            storage_secret=storage_secret,
        )
        extra, skipped = found.files, found.skipped
        warnings += found.warnings

    def fill(folder: Path) -> None:
        for file, content in docs.items():
            (folder / file).write_text(_yaml(content))
        (folder / "kustomization.yaml").write_text(_yaml([kustomization]))
        for file, (header, content) in extra.items():
            (folder / file).parent.mkdir(exist_ok=True)
            (folder / file).write_text(_yaml(content, header))

    about = {"deployment": deployment, "revision": served.revision} if deployment else {}
    path = write_folder(Path(out), KIND, fill, about={"ref": ref, "uri": served.uri, **about})
    return Manifests(
        path=path,
        app=app,
        image=tag,
        files=[*docs, "kustomization.yaml", *extra],
        model_name=served.model_name,
        model_version=served.model_version,
        cronjobs=cron_files,
        deployment=deployment,
        revision=served.revision,
        skipped=skipped,
        warnings=warnings,
    )


@dataclass
class _Served:
    """What the pods serve: a model ref, or a recorded deployment and its routes."""

    app_source: str | None
    uri: str
    model_name: str | None
    model_version: str | None
    labels: dict[str, str]
    command: list[str] | None = None  # None: the image's CMD (build-image's baked model)
    required_secrets: tuple[str, ...] = ()
    spec: DeploymentSpec | None = None
    routes: list[Route] = field(default_factory=list)
    revision: int | None = None
    warnings: list[str] = field(default_factory=list)


def _served_ref(ref: str) -> _Served:
    from flowship.predict.refs import resolve_ref

    resolved = resolve_ref(ref)
    return _Served(
        app_source=resolved.model_name,
        uri=resolved.uri,
        model_name=resolved.model_name,
        model_version=resolved.model_version,
        labels={
            "flowship.io/model": label_value(resolved.model_name or "model"),
            "flowship.io/version": label_value(resolved.model_version or "none"),
        },
    )


# The pods of a recorded deployment read its revisions from flowship's state database
# and load the variants from the registry: both must come from the Secret.
_DEPLOYMENT_SECRETS = ("FLOWSHIP_DATABASE_URL", "MLFLOW_TRACKING_URI")


def _served_deployment(name: str, secret: str | None, env: dict[str, str]) -> _Served:
    from flowship.deployments import current

    revision = current(name)  # DeploymentNotFound (exit 2) for an unknown name
    if not secret:
        raise UsageError(
            f"--deployment {name} needs --secret NAME: its pods read flowship's state "
            "database and the registry, and those URLs come only from a Secret.",
            "Create a Secret with the keys FLOWSHIP_DATABASE_URL and MLFLOW_TRACKING_URI "
            "and pass --secret SECRET_NAME.",
        )
    spec = revision.spec
    found = routes(spec)
    heaviest = max((r for r in found if not r.shadow), key=lambda r: r.weight)
    warnings = []
    table = spec.log.table if spec.log else ""
    if spec.log and "://" not in table and "FLOWSHIP_TABLES_URI" not in env:
        warnings.append(
            f"The prediction log {table!r} would be written inside each pod (lost on "
            "restart): give --env FLOWSHIP_TABLES_URI=s3://... (or a URI in log.table)."
        )
    return _Served(
        app_source=name,
        uri=f"deployment:{name}",
        model_name=heaviest.model_name,
        model_version=heaviest.version,
        # No revision label: the pods follow newer revisions by themselves.
        labels={"flowship.io/deployment": label_value(name)},
        command=[
            "flowship",
            "serve",
            "--deployment",
            name,
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
        ],  # fmt: skip
        required_secrets=_DEPLOYMENT_SECRETS,
        spec=spec,
        routes=found,
        revision=revision.revision,
        warnings=warnings,
    )


_DNS_HINT = "Use lower-case letters, digits and '-'."


def _yaml(docs: list[dict[str, Any]], notes: str = "") -> str:
    import yaml

    header = "# Generated by flowship k8s; edit freely, or regenerate.\n" + notes
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def _config_map(app: str, labels: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{app}-config", "labels": labels},
        "data": {"FLOWSHIP_HOME": "/tmp/flowship", **dict(sorted(env.items()))},
    }


def _deployment(
    app: str,
    labels: dict[str, str],
    image: str,
    replicas: int,
    env: list[dict[str, Any]],
    command: list[str] | None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": pod_template(app, labels, image, env, command=command),
        },
    }


def _service(app: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _pdb(app: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "labels": labels},
        # maxUnavailable, not minAvailable: a one-replica deployment stays drainable.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app}}},
    }
