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
from typing import Any

from flowship.errors import UsageError
from flowship.packaging._output import check_folder, write_folder
from flowship.packaging.credentials import refuse_credentials

KIND = "k8s"
PORT = 8080
# Settings read from a Secret when it exists (optional: the server itself needs none,
# since build-image bakes the model in; batch jobs reach the registry and databases).
SECRET_KEYS = ("MLFLOW_TRACKING_URI", "FLOWSHIP_DATABASE_URL", "FLOWSHIP_WEBHOOK", "PGPASSWORD")
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
    ref: str,
    out: Path,
    *,
    image: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    replicas: int = 2,
    max_replicas: int | None = None,
    secret: str | None = None,
    env: dict[str, str] | None = None,
    jobs: list[Path] | None = None,
    cron: str | None = None,
) -> Manifests:
    """Write the manifests for serving ``ref`` (and its batch jobs) to ``out``."""
    import yaml

    from flowship.packaging.image import image_name
    from flowship.predict.refs import resolve_ref
    from flowship.schedule import cronjob_manifest, plan_entries

    check_folder(Path(out), KIND)
    if not 1 <= replicas <= 1000:
        raise UsageError(f"--replicas {replicas} is out of range.", "Use 1 to 1000.")
    top = max_replicas if max_replicas is not None else max(replicas * 4, replicas + 1)
    if not replicas <= top <= 1000:
        raise UsageError(
            f"--max-replicas {top} is below --replicas {replicas}.", "Use a larger maximum."
        )
    for label, value in (("--namespace", namespace), ("--secret", secret)):
        if value is not None and (not _DNS.match(value) or len(value) > 63):
            raise UsageError(f"{label} {value!r} is not a valid Kubernetes name.", _DNS_HINT)
    refuse_credentials("--env", env or {})
    resolved = resolve_ref(ref)
    app = app_name(resolved.model_name, name)
    tag = image or image_name(resolved.model_name, resolved.model_version)
    entries = plan_entries(list(jobs), cron=cron) if jobs else []
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "flowship",
    }
    model_labels = {
        "flowship.io/model": _label_value(resolved.model_name or "model"),
        "flowship.io/version": _label_value(resolved.model_version or "none"),
    }
    docs: dict[str, list[dict[str, Any]]] = {
        "configmap.yaml": [_config_map(app, labels, env or {})],
        "deployment.yaml": [_deployment(app, labels, model_labels, tag, replicas, secret)],
        "service.yaml": [_service(app, labels)],
        "hpa.yaml": [_hpa(app, labels, replicas, top)],
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

    def fill(folder: Path) -> None:
        for file, content in docs.items():
            (folder / file).write_text(_yaml(content))
        (folder / "kustomization.yaml").write_text(_yaml([kustomization]))

    path = write_folder(Path(out), KIND, fill, about={"ref": ref, "uri": resolved.uri})
    return Manifests(
        path=path,
        app=app,
        image=tag,
        files=[*docs, "kustomization.yaml"],
        model_name=resolved.model_name,
        model_version=resolved.model_version,
        cronjobs=cron_files,
    )


_DNS_HINT = "Use lower-case letters, digits and '-'."


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")
    return value or "none"


def _yaml(docs: list[dict[str, Any]]) -> str:
    import yaml

    header = "# Generated by flowship k8s; edit freely, or regenerate.\n"
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
    model_labels: dict[str, str],
    image: str,
    replicas: int,
    secret: str | None,
) -> dict[str, Any]:
    from flowship.schedule import CONTAINER_SECURITY, POD_SECURITY

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"{app}-config"}}],
        # The first load converts and checks the model: up to 5 minutes before liveness.
        "startupProbe": probe("/v2/health/ready", 5, 60),
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "1Gi"},
        },
        # The Service stops routing to a terminating pod a little after SIGTERM; keep
        # serving until it has, then flowship serve drains in-flight requests.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if secret:
        container["env"] = [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
            }
            for key in SECRET_KEYS
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": {**labels, **model_labels}},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**labels, **model_labels},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    # preStop (10 s) + the server's drain must fit in the grace period.
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": POD_SECURITY,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
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


def _hpa(app: str, labels: dict[str, str], low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
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
