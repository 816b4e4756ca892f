"""``flowship k8s``: manifests that kubernetes-validate accepts (offline schemas, strict)
and ``kubectl kustomize`` builds; credentials never land in a ConfigMap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

KUBERNETES = "1.37.0"  # the newest schemas kubernetes-validate ships


def _validate(*files: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [exe, "--strict", "-k", KUBERNETES, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def kustomized(out: Path) -> list[dict]:
    """The documents ``kubectl kustomize OUT`` builds; skips without kubectl."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the kustomize build check needs it")
    built = subprocess.run(
        ["kubectl", "kustomize", str(out)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return list(yaml.safe_load_all(built.stdout))


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    path = tmp_path / "daily-churn.yaml"
    path.write_text(
        "model: models:/churn@production\nid: customer_id\nincremental: true\n"
        "input: /data/customers.parquet\noutput: predictions\nschedule: '0 6 * * *'\n"
    )
    return path


def test_manifests_validate_and_build(store, cli, tmp_path, job_file):
    out = tmp_path / "k8s"
    result = cli(
        "k8s", "models:/churn@production", "-o", out, "--namespace", "ml",
        "--secret", "churn-secrets", "--env", "LOG_LEVEL=info", "--job", job_file, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["app"] == "churn" and body["image"] == "churn:1"
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert files == sorted(
        ["configmap.yaml", "cronjob-daily-churn.yaml", "deployment.yaml", "hpa.yaml",
         "kustomization.yaml", "pdb.yaml", "service.yaml"]
    )  # fmt: skip
    manifests = [out / f for f in files if f != "kustomization.yaml"]
    checked = _validate(*manifests)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed") == 7  # the CronJob file holds its ConfigMap too

    (deployment,) = _docs(out / "deployment.yaml")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the image's USER
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert container["resources"]["requests"]["memory"] == "512Mi"
    assert container["ports"][0]["containerPort"] == 8080
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"]]
    assert {r["name"] for r in refs} == {"churn-secrets"}
    assert "FLOWSHIP_DATABASE_URL" in {r["key"] for r in refs}
    (config,) = _docs(out / "configmap.yaml")
    assert config["data"] == {"FLOWSHIP_HOME": "/tmp/flowship", "LOG_LEVEL": "info"}
    job_config, cron_job = _docs(out / "cronjob-daily-churn.yaml")
    assert cron_job["spec"]["schedule"] == "0 6 * * *"
    job_pod = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["securityContext"]["runAsNonRoot"] is True
    assert job_pod["containers"][0]["image"] == "churn:1"

    built = kustomized(out)
    assert sorted(d["kind"] for d in built) == sorted(
        ["ConfigMap", "ConfigMap", "CronJob", "Deployment", "HorizontalPodAutoscaler",
         "PodDisruptionBudget", "Service"]
    )  # fmt: skip
    assert {d["metadata"]["namespace"] for d in built} == {"ml"}


def test_validation_can_fail(tmp_path):
    """The schema check is real: a misspelt field is rejected."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
        "spec: {ports: [{port: 80, targetPort: http}], selectr: {app: x}}\n"
    )
    assert _validate(bad).returncode != 0


PASSWORD_URL = "postgresql+psycopg://etl:hunter2@db:5432/shop"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (f"input:\n  query: select 1\n  url: {PASSWORD_URL}\n", "input.url"),
        ("webhook: https://hooks.slack.com/services/T0/B0/XYZ\n", "webhook"),
    ],
)
def test_credentials_in_a_job_file_are_refused(store, cli, tmp_path, extra, field):
    path = tmp_path / "job.yaml"
    if field == "webhook":  # a monitor file
        path.write_text(
            "kind: monitor\nname: churn\nmodel: models:/churn/1\n"
            "health: {max_age_days: 90}\n" + extra
        )
    else:
        path.write_text("model: models:/churn/1\nid: customer_id\noutput: predictions\n" + extra)
    out = tmp_path / "k8s"
    for args in (
        ["k8s", "models:/churn/1", "-o", out, "--job", path, "--cron", "0 6 * * *"],
        ["schedule", path, "--cron", "0 6 * * *", "--export-cronjob"],
    ):
        result = cli(*args)
        assert result.exit_code == 2, result.stderr
        assert "holds credentials" in result.stderr and field in result.stderr
        assert "hunter2" not in result.stderr and "XYZ" not in result.stderr
        assert result.stdout == "" and not out.exists()


def test_credentials_in_env_are_refused(store, cli, tmp_path):
    out = tmp_path / "k8s"
    result = cli(
        "k8s", "models:/churn/1", "-o", out, "--env", f"FLOWSHIP_DATABASE_URL={PASSWORD_URL}"
    )
    assert result.exit_code == 2
    assert "--env holds credentials" in result.stderr and "hunter2" not in result.stderr
    assert not out.exists()
    result = cli("k8s", "models:/churn/1", "-o", out, "--env", "SLACK_TOKEN=xoxb-1")
    assert result.exit_code == 2 and "SLACK_TOKEN: a SLACK_TOKEN value" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models:/nope/1"], "Model 'nope' is not registered."),
        (["models:/churn/1", "--replicas", "0"], "--replicas 0 is out of range."),
        (["models:/churn/1", "--replicas", "3", "--max-replicas", "2"], "is below --replicas 3"),
        (["models:/churn/1", "--name", "Bad_Name"], "is not a valid Kubernetes name"),
        (["models:/churn/1", "--namespace", "x" * 70], "is not a valid Kubernetes name"),
        (["models:/churn/1", "--env", "novalue"], "is not KEY=VALUE"),
        (["models:/churn/1", "--job", "missing.yaml"], "no such job file"),
    ],
)
def test_bad_input_writes_nothing(store, cli, tmp_path, args, message):
    out = tmp_path / "k8s"
    result = cli("k8s", *args, "-o", out)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_foreign_and_other_kind_folders_are_refused(store, cli, tmp_path):
    mine = tmp_path / "deploy"
    mine.mkdir()
    (mine / "deployment.yaml").write_text("# mine\n")
    result = cli("k8s", "models:/churn/1", "-o", mine)
    assert result.exit_code == 2 and "was not written by flowship" in result.stderr
    assert (mine / "deployment.yaml").read_text() == "# mine\n"
    ctx = tmp_path / "ctx"
    assert cli("build-image", "models:/churn/1", "-o", ctx).exit_code == 0
    other = cli("k8s", "models:/churn/1", "-o", ctx)
    assert other.exit_code == 2 and "holds flowship's 'build-image' output" in other.stderr
    assert (ctx / "Dockerfile").is_file()


def test_a_monitor_file_without_webhook_reads_it_from_the_environment(store, cli, tmp_path):
    """What lets the webhook live in the Secret (FLOWSHIP_WEBHOOK) instead of the file."""
    import os

    from flowship.config import get_settings

    path = tmp_path / "monitor.yaml"
    path.write_text(
        "kind: monitor\nname: churn\nmodel: models:/churn/1\nhealth: {max_age_days: 90}\n"
    )
    assert cli("monitor", "run", path).exit_code == 0
    os.environ["FLOWSHIP_WEBHOOK"] = "not-a-url"
    try:
        get_settings.cache_clear()
        result = cli("monitor", "run", path)
    finally:
        del os.environ["FLOWSHIP_WEBHOOK"]
        get_settings.cache_clear()
    assert (
        result.exit_code == 2 and "The webhook 'not-a-url' is not an http(s) URL" in result.stderr
    )
