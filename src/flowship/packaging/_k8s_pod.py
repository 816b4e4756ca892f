"""The parts shared by every workload ``flowship k8s`` writes (the core Deployment, and
each variant's workload in the KServe and Argo Rollouts files): the hardened
model-server pod, the Secret's env entries, the autoscaler, label values."""

from __future__ import annotations

import re
from typing import Any

PORT = 8080
# Settings read from a Secret when it exists (optional: the server itself needs none,
# since build-image bakes the model in; batch jobs reach the registry and databases).
SECRET_KEYS = ("MLFLOW_TRACKING_URI", "FLOWSHIP_DATABASE_URL", "FLOWSHIP_WEBHOOK", "PGPASSWORD")


def secret_env(secret: str | None, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The Secret's keys as ``secretKeyRef`` env entries; ``required`` ones not optional."""
    if not secret:
        return []
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": secret, "key": key, "optional": key not in required}
            },
        }
        for key in SECRET_KEYS
    ]


def pod_template(
    app: str,
    labels: dict[str, str],
    image: str,
    env: list[dict[str, Any]],
    *,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """The hardened model-server pod (the image's CMD unless ``command`` is given)."""
    from flowship.schedule import CONTAINER_SECURITY, POD_SECURITY

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container: dict[str, Any] = {"name": "server", "image": image}
    if command:
        container["command"] = command
    container |= {
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
    if env:
        container["env"] = env
    return {
        "metadata": {
            "labels": labels,
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
    }


def label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")
    return value or "none"


def hpa(
    app: str,
    labels: dict[str, str],
    low: int,
    high: int,
    target: tuple[str, str] = ("apps/v1", "Deployment"),
) -> dict[str, Any]:
    """CPU autoscaling of the workload ``app`` (``target``: its apiVersion and kind)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": target[0], "kind": target[1], "name": app},
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
