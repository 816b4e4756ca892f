"""``flowship k8s --deployment NAME``: a recorded deployment served by flowship's router
(core manifests, checked like REF's), and its traffic as KServe, Argo Rollouts and Seldon
Core 2 resources, each checked by what its project publishes:

- KServe: round-tripped through the ``kserve`` SDK's models (PyPI), installed in a
  virtualenv of its own since it pins pandas and protobuf below flowship's;
- Argo Rollouts: the JSON-schema validators of ``@kubernetes-models/argo-rollouts`` (npm);
- Seldon Core 2: no package ships its CRDs or SDK models (they live in the project's Go
  module and Helm chart only), so the Models and the Experiment are checked against the
  CRDs' ``openAPIV3Schema`` transcribed below, strict about unknown fields as ``kubectl
  apply`` is.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.packaging.test_k8s import _docs, _validate, kustomized

HERE = Path(__file__).parent
KSERVE = "kserve==0.21.0"
ARGO_MODELS = "@kubernetes-models/argo-rollouts@2.0.0"

SPEC = """\
name: churn-ab
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 90}
  challenger: {ref: "2", weight: 10}
  candidate:  {ref: "2", shadow: true, sample: 0.5}
log: {table: prediction_log}
"""


def _apply(cli, tmp_path: Path, text: str) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    result = cli("deployment", "apply", path)
    assert result.exit_code == 0, result.stderr


def _k8s(cli, out: Path, *args: str):
    return cli("k8s", "--deployment", "churn-ab", "-o", out, "--secret", "churn-db", *args)


@pytest.fixture
def recorded(store, cli, tmp_path):
    _apply(cli, tmp_path, SPEC)
    return store


def test_core_manifests_serve_the_deployment(recorded, cli, tmp_path):
    out = tmp_path / "k8s"
    result = _k8s(cli, out, "--namespace", "ml", "--json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["app"] == "churn-ab" and body["image"] == "churn:1"  # the champion's image
    assert body["deployment"] == "churn-ab" and body["revision"] == 1
    # The session store keeps its files on this disk: no Seldon Model could read them.
    assert list(body["skipped"]) == ["seldon"]
    assert "variant 'champion' (models:/churn/1) is stored at file:///" in body["skipped"]["seldon"]
    assert "which a cluster cannot read" in body["skipped"]["seldon"]
    assert "sticky key 'customer_id'" in result.stderr
    assert "prediction log 'prediction_log' would be written inside each pod" in result.stderr

    core = ["configmap.yaml", "deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == core  # the CR folders are not in it
    checked = _validate(*(out / f for f in core))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (deployment,) = _docs(out / "deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "flowship", "serve", "--deployment", "churn-ab", "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["FLOWSHIP_DATABASE_URL"] == {
        "name": "churn-db", "key": "FLOWSHIP_DATABASE_URL", "optional": False,
    }  # fmt: skip
    assert refs["MLFLOW_TRACKING_URI"]["optional"] is False
    assert refs["PGPASSWORD"]["optional"] is True
    assert deployment["metadata"]["labels"]["flowship.io/deployment"] == "churn-ab"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml")) == sorted(
        [*core, "kustomization.yaml", "kserve/1-champion.yaml", "kserve/2-challenger.yaml",
         "argo/1-champion.yaml", "argo/2-challenger.yaml", "argo/analysistemplate.yaml",
         "argo/hpa.yaml"]
    )  # fmt: skip

    assert sorted(d["kind"] for d in kustomized(out)) == sorted(
        ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    )


# ---------------------------------------------------------------------------- KServe


@pytest.fixture(scope="session")
def kserve_python(tmp_path_factory) -> Path:
    """A virtualenv with KServe's SDK from PyPI, for this session."""
    venv = tmp_path_factory.mktemp("kserve") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", KSERVE],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return python


def _checked(argv: list, docs: list[dict], tmp_path: Path, cwd: Path | None = None) -> list:
    """Run a validator on ``docs`` (a JSON file, its path appended to ``argv``); what it
    found, one entry per document."""
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    done = subprocess.run(
        [*argv, str(tmp_path / "docs.json")], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _kserve_check(python: Path, docs: list[dict], tmp_path: Path) -> list[list[str]]:
    return _checked([python, HERE / "kserve_roundtrip.py"], docs, tmp_path)


def test_kserve_inference_services_roundtrip_the_sdk(recorded, cli, tmp_path, kserve_python):
    out = tmp_path / "k8s"
    assert _k8s(cli, out).exit_code == 0
    (champion,) = _docs(out / "kserve/1-champion.yaml")
    (challenger,) = _docs(out / "kserve/2-challenger.yaml")
    assert _kserve_check(kserve_python, [champion, challenger], tmp_path) == [[], []]

    assert "canaryTrafficPercent" not in champion["spec"]["predictor"]
    assert challenger["spec"]["predictor"]["canaryTrafficPercent"] == 10
    commands = [d["spec"]["predictor"]["containers"][0]["command"] for d in (champion, challenger)]
    assert [c[2] for c in commands] == ["models:/churn/1", "models:/churn/2"]  # pinned
    assert champion["metadata"]["name"] == challenger["metadata"]["name"] == "churn-ab"
    header = (out / "kserve/2-challenger.yaml").read_text()
    assert "shadow variants (candidate)" in header and "sticky key" in header

    # The check is real: a misspelt field and a wrong type are reported.
    bad = copy.deepcopy(challenger)
    bad["spec"]["predictor"]["canaryTraficPercent"] = bad["spec"]["predictor"].pop(
        "canaryTrafficPercent"
    )
    worse = copy.deepcopy(champion)
    worse["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "http"
    problems = _kserve_check(kserve_python, [bad, worse], tmp_path)
    assert "canaryTraficPercent: not a field" in problems[0][0]
    assert "containerPort: expected int" in problems[1][0]


# --------------------------------------------------------------------- Argo Rollouts


@pytest.fixture(scope="session")
def argo_models(tmp_path_factory) -> Path:
    """@kubernetes-models/argo-rollouts from the npm registry, with the check script."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: the Argo Rollouts check needs them")
    folder = tmp_path_factory.mktemp("argo-models")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", ARGO_MODELS],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.copy(HERE / "validate_argo.mjs", folder)  # ES modules resolve from their folder
    return folder


def _argo_check(folder: Path, docs: list[dict], tmp_path: Path) -> list[str | None]:
    return _checked(["node", "validate_argo.mjs"], docs, tmp_path, cwd=folder)


def test_argo_rollout_and_analysis_validate(recorded, cli, tmp_path, argo_models):
    out = tmp_path / "k8s"
    assert _k8s(cli, out, "--prometheus", "http://prom.obs:9090").exit_code == 0
    (champion,) = _docs(out / "argo/1-champion.yaml")
    (challenger,) = _docs(out / "argo/2-challenger.yaml")
    (template,) = _docs(out / "argo/analysistemplate.yaml")
    assert _argo_check(argo_models, [champion, challenger, template], tmp_path) == [None] * 3

    canary = challenger["spec"]["strategy"]["canary"]
    assert canary["steps"] == [{"setWeight": 10}, {"pause": {}}]
    assert canary["analysis"]["templates"] == [{"templateName": "churn-ab-health"}]
    assert {a["name"]: a["value"] for a in canary["analysis"]["args"]} == {
        "model": "churn", "version": "2",
    }  # fmt: skip
    assert champion["spec"]["strategy"]["canary"]["steps"] == []
    pod = challenger["spec"]["template"]
    assert pod["spec"]["containers"][0]["command"][2] == "models:/churn/2"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The core Service selects the Rollout's pods too.
    (service,) = _docs(out / "service.yaml")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    metrics = {m["name"]: m["provider"]["prometheus"] for m in template["spec"]["metrics"]}
    assert {p["address"] for p in metrics.values()} == {"http://prom.obs:9090"}
    # The published validators accept unknown fields: the pod template and the HPA are
    # core kinds, checked strictly by kubernetes-validate (the template in a Deployment).
    as_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "churn-ab"},
        "spec": {"selector": challenger["spec"]["selector"], "template": pod},
    }
    (tmp_path / "template.yaml").write_text(yaml.safe_dump(as_deployment))
    checked = _validate(out / "argo/hpa.yaml", tmp_path / "template.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (hpa,) = _docs(out / "argo/hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "churn-ab",
    }  # fmt: skip

    bad = copy.deepcopy(challenger)
    bad["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten"
    worse = copy.deepcopy(template)
    del worse["spec"]["metrics"][0]["name"]
    problems = _argo_check(argo_models, [bad, worse], tmp_path)
    assert "setWeight must be integer" in problems[0]
    assert "metrics/0 must have required property name" in problems[1]


def test_analysis_queries_read_flowships_metrics(recorded, cli, tmp_path):
    """The queries name metrics and labels that flowship's server really exposes."""
    from prometheus_client.parser import text_string_to_metric_families

    from flowship.serving.metrics import ServingMetrics

    out = tmp_path / "k8s"
    assert _k8s(cli, out).exit_code == 0
    (template,) = _docs(out / "argo/analysistemplate.yaml")
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in template["spec"]["metrics"]}
    metrics = ServingMetrics()
    metrics.requests.inc("churn", "2", "onnx", "invocations", "500")
    metrics.latency.observe(0.02, "churn", "2", "onnx", "invocations")
    exposed = {
        sample.name: set(sample.labels)
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    assert queries["error-rate"] == (
        'sum(rate(flowship_requests_total{model="{{args.model}}",version="{{args.version}}",'
        'status=~"5.."}[5m])) / sum(rate(flowship_requests_total{model="{{args.model}}",'
        'version="{{args.version}}"}[5m]))'
    )
    assert {"model", "version", "status"} <= exposed["flowship_requests_total"]
    assert "flowship_request_duration_seconds_bucket{" in queries["p99-latency"]
    assert {"model", "version", "le"} <= exposed["flowship_request_duration_seconds_bucket"]


def _conditions(out: Path) -> dict[str, str]:
    (template,) = _docs(out / "argo/analysistemplate.yaml")
    return {m["name"]: m["successCondition"] for m in template["spec"]["metrics"]}


def test_analysis_thresholds_default_and_can_be_set(recorded, cli, tmp_path):
    out = tmp_path / "k8s"
    assert _k8s(cli, out).exit_code == 0
    assert _conditions(out) == {
        "error-rate": "len(result) == 0 || isNaN(result[0]) || result[0] <= 0.01",
        "p99-latency": "len(result) == 0 || isNaN(result[0]) || result[0] <= 1.0",
    }
    result = _k8s(cli, out, "--max-error-rate", "0.00001", "--max-p99", "250ms")
    assert result.exit_code == 0, result.stderr
    conditions = _conditions(out)
    assert conditions["error-rate"].endswith("result[0] <= 0.00001")  # no 1e-05 for expr
    assert conditions["p99-latency"].endswith("result[0] <= 0.25")
    assert _k8s(cli, out, "--max-error-rate", "1", "--max-p99", "1.5s").exit_code == 0
    assert _conditions(out)["error-rate"].endswith("<= 1.0")
    assert _conditions(out)["p99-latency"].endswith("<= 1.5")
    assert _k8s(cli, out, "--max-p99", "2m").exit_code == 0
    assert _conditions(out)["p99-latency"].endswith("<= 120.0")


# ---------------------------------------------------------------------- Seldon Core 2

# Experiment (mlops.seldon.io/v1alpha1) spec, transcribed from the openAPIV3Schema of
# Seldon Core 2's CRD (operator/config/crd/bases/mlops.seldon.io_experiments.yaml).
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_STRING = {"type": "string"}


def _strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    """An object schema as the API server applies a structural one: unknown fields are
    errors (kubectl apply's strict field validation)."""
    return {
        "type": "object",
        "required": list(required),
        "additionalProperties": False,
        "properties": properties,
    }


# Model (mlops.seldon.io/v1alpha1) spec, transcribed from the openAPIV3Schema of Seldon
# Core 2's CRD (operator/config/crd/bases/mlops.seldon.io_models.yaml, SeldonIO/seldon-core
# at 043fd92, controller-gen v0.18.0): every field of ModelSpec, status left out.
MODEL_SCHEMA = _strict(
    {
        "apiVersion": {"const": "mlops.seldon.io/v1alpha1"},
        "kind": {"const": "Model"},
        "metadata": {"type": "object"},
        "spec": _strict(
            {
                "artifactVersion": _INT32,
                "dataflow": _strict({"cleanTopicsOnDelete": {"type": "boolean"}}),
                "dedicated": {"type": "boolean"},
                "explainer": _strict(
                    {"modelRef": _STRING, "pipelineRef": _STRING, "type": _STRING}
                ),
                "llm": _strict({"modelRef": _STRING, "pipelineRef": _STRING}),
                "logger": _strict({"percent": {"type": "integer"}}),
                "maxReplicas": _INT32,
                "memory": {
                    "anyOf": [
                        {"type": "integer"},
                        {
                            "type": "string",
                            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)"
                            r"|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
                        },
                    ]
                },
                "minReplicas": _INT32,
                "modelType": _STRING,
                "parameters": {
                    "type": "array",
                    "items": _strict({"name": _STRING, "value": _STRING}, ("name", "value")),
                },
                "preloaded": {"type": "boolean"},
                "replicas": _INT32,
                "requirements": {"type": "array", "items": _STRING},
                "schemaUri": _STRING,
                "secretName": _STRING,
                "server": _STRING,
                "storageUri": _STRING,
            },
            ("storageUri",),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
EXPERIMENT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "mlops.seldon.io/v1alpha1"},
        "kind": {"const": "Experiment"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["candidates"],
            "additionalProperties": False,
            "properties": {
                "candidates": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "weight"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "weight": _INT32},
                    },
                },
                "default": {"type": "string"},
                "mirror": {
                    "type": "object",
                    "required": ["name", "percent"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "percent": _INT32},
                },
                "resourceType": {"type": "string"},
            },
        },
    },
}


def _seldon_errors(doc: dict) -> list[str]:
    from jsonschema import Draft202012Validator

    schema = MODEL_SCHEMA if doc.get("kind") == "Model" else EXPERIMENT_SCHEMA
    return [e.message for e in Draft202012Validator(schema).iter_errors(doc)]


@pytest.fixture
def in_buckets(store, cli, tmp_path):
    """SPEC over ``churn-bucket``, whose versions are registry rows with their files in
    object stores (s3:// and gs://, as a tracking server with a bucket artifact root
    records them); nothing here reads those files."""
    from flowship._mlflow import client

    registry = client()
    if not registry.search_model_versions("name='churn-bucket'"):  # the session store's
        registry.create_registered_model("churn-bucket")
        registry.create_model_version("churn-bucket", "s3://models/churn/1")
        registry.create_model_version("churn-bucket", "gs://models/churn/2")
        registry.set_registered_model_alias("churn-bucket", "production", "1")
    _apply(cli, tmp_path, SPEC.replace("model: churn\n", "model: churn-bucket\n"))
    return store


def test_seldon_models_and_experiment_match_the_crds(in_buckets, cli, tmp_path):
    out = tmp_path / "k8s"
    result = _k8s(cli, out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == {}
    models = _docs(out / "seldon/1-models.yaml")
    (experiment,) = _docs(out / "seldon/2-experiment.yaml")
    assert [_seldon_errors(d) for d in [*models, experiment]] == [[]] * 4
    assert {m["metadata"]["name"]: m["spec"] for m in models} == {
        "churn-ab-champion": {"storageUri": "s3://models/churn/1", "requirements": ["mlflow"]},
        "churn-ab-challenger": {"storageUri": "gs://models/churn/2", "requirements": ["mlflow"]},
        "churn-ab-candidate": {"storageUri": "gs://models/churn/2", "requirements": ["mlflow"]},
    }
    assert models[0]["metadata"]["labels"]["flowship.io/version"] == "1"
    assert experiment["spec"] == {
        "default": "churn-ab-champion",
        "resourceType": "model",
        "candidates": [
            {"name": "churn-ab-champion", "weight": 90},
            {"name": "churn-ab-challenger", "weight": 10},
        ],
        "mirror": {"name": "churn-ab-candidate", "percent": 50},
    }
    # Every name the Experiment routes to is one of the Models.
    names = {m["metadata"]["name"] for m in models}
    routed = [c["name"] for c in experiment["spec"]["candidates"]]
    assert {experiment["spec"]["default"], *routed, experiment["spec"]["mirror"]["name"]} == names
    header = (out / "seldon/2-experiment.yaml").read_text()
    assert "MLServer's MLflow runtime serves each Model" in header
    assert "create a Seldon Model" not in header and "sticky key" in header

    bad = copy.deepcopy(experiment)
    bad["spec"]["candidates"][0]["weight"] = 90.5
    bad["spec"]["mirror"]["percnt"] = 1
    assert len(_seldon_errors(bad)) == 2
    worse = copy.deepcopy(models[0])
    worse["spec"]["storageURI"] = worse["spec"].pop("storageUri")
    worse["spec"]["requirements"] = "mlflow"
    assert len(_seldon_errors(worse)) == 3  # storageUri missing, storageURI unknown, a list


def test_seldon_models_read_a_private_bucket_through_the_storage_secret(in_buckets, cli, tmp_path):
    out = tmp_path / "k8s"
    result = _k8s(cli, out, "--storage-secret", "seldon-rclone-s3")
    assert result.exit_code == 0, result.stderr
    models = _docs(out / "seldon/1-models.yaml")
    assert [_seldon_errors(m) for m in models] == [[]] * 3
    assert {m["spec"]["secretName"] for m in models} == {"seldon-rclone-s3"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--storage-secret", "Not_A_Name"), "--storage-secret 'Not_A_Name' is not a valid"),
        (("--storage-secret", "x" * 64), "is not a valid Kubernetes name"),
    ],
)
def test_a_bad_storage_secret_is_refused_before_anything_is_written(
    in_buckets, cli, tmp_path, args, message
):
    out = tmp_path / "k8s"
    result = _k8s(cli, out, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_storage_secret_needs_a_deployment(store, cli, tmp_path):
    out = tmp_path / "k8s"
    result = cli("k8s", "models:/churn/1", "-o", out, "--storage-secret", "s3-remote")
    assert result.exit_code == 2
    assert "--storage-secret names the Secret of --deployment's Seldon Models" in result.stderr
    assert not out.exists()


# ------------------------------------------------------------- what cannot be mapped


def test_splits_a_target_cannot_express_are_skipped_with_the_reason(store, cli, tmp_path):
    _apply(
        cli,
        tmp_path,
        "name: churn-ab\nmodel: churn\nvariants:\n"
        "  a: {ref: '1', weight: 50}\n  b: {ref: '2', weight: 30}\n  c: {ref: '2', weight: 20}\n"
        "  s1: {ref: '1', shadow: true}\n  s2: {ref: '2', shadow: true}\n",
    )
    out = tmp_path / "k8s"
    result = _k8s(cli, out, "--json")
    assert result.exit_code == 0, result.stderr
    skipped = json.loads(result.stdout)["skipped"]
    assert set(skipped) == {"kserve", "argo", "seldon"}
    assert "3 answering variants (a, b, c)" in skipped["kserve"]
    assert "one mirror" in skipped["seldon"]
    assert "warning: argo/ not written: Argo Rollouts has one stable" in result.stderr
    assert not (out / "kserve").exists() and (out / "deployment.yaml").exists()

    (tmp_path / "second").mkdir()
    _apply(
        cli,
        tmp_path / "second",
        "name: churn-ab\nmodel: churn\nvariants:\n"
        "  a: {ref: '1', weight: 87.5}\n  b: {ref: '2', weight: 12.5}\n"
        "  c: {ref: '2', weight: 0}\n"
        "  s1: {ref: '1', shadow: true}\n  s2: {ref: '2', shadow: true}\n",
    )
    result = _k8s(cli, out, "--json")  # replaces its own earlier output
    skipped = json.loads(result.stdout)["skipped"]
    assert "weight 87.5" in skipped["kserve"] and "whole percent" in skipped["argo"]


_RATE = ["k8s", "--deployment", "churn-ab", "--secret", "s", "--max-error-rate"]
_P99 = ["k8s", "--deployment", "churn-ab", "--secret", "s", "--max-p99"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["k8s", "--deployment", "nope", "--secret", "s"], "No deployment named 'nope'"),
        (["k8s", "models:/churn/1", "--deployment", "churn-ab"], "not both"),
        (["k8s"], "Give a model ref or --deployment NAME."),
        (["k8s", "--deployment", "churn-ab"], "needs --secret NAME"),
        (
            ["k8s", "models:/churn/1", "--max-p99", "1s"],
            "--max-error-rate and --max-p99 set the Argo canary analysis of --deployment",
        ),
        (_RATE + ["0"], "--max-error-rate 0.0 is not a share of requests"),
        (_RATE + ["1.5"], "--max-error-rate 1.5 is not a share of requests"),
        (_RATE + ["nan"], "--max-error-rate nan is not a share of requests"),
        (_P99 + ["fast"], "Cannot read --max-p99 'fast' as a positive duration"),
        (_P99 + ["0ms"], "Cannot read --max-p99 '0ms'"),
        (_P99 + ["1"], "Cannot read --max-p99 '1'"),  # seconds or minutes? say it
        (_P99 + ["-1s"], "Cannot read --max-p99 '-1s'"),
    ],
)
def test_bad_input_writes_nothing(recorded, cli, tmp_path, args, message):
    out = tmp_path / "k8s"
    result = cli(*args, "-o", out)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and result.stdout == ""
    assert not out.exists()


def test_a_folder_not_flowships_is_refused(recorded, cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    result = _k8s(cli, out)
    assert result.exit_code == 2
    assert "was not written by flowship; nothing was written" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not any(p.name.startswith(".mine") for p in tmp_path.iterdir())  # no staging left


# ------------------------------------------------------- the pods' commands, for real


def _run_pod_command(command: list[str], env: dict[str, str], tmp_path: Path, name: str):
    """``command`` as a pod would run it, with its env only (plus PATH), on loopback:
    the host and port are the only parts changed."""
    from tests.serving._server import Server, free_port

    port = free_port()
    argv = [*command]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    assert argv[0] == "flowship"
    argv[0] = str(Path(sys.executable).parent / "flowship")
    full_env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", **env}
    return Server(argv, env=full_env, log=tmp_path / f"{name}.log", port=port)


def test_the_pods_commands_serve_with_only_the_secrets_keys(recorded, cli, tmp_path):
    """The core Deployment's command serves the recorded deployment, and a KServe pod's
    command its pinned version, given only the ConfigMap's settings and the Secret's
    FLOWSHIP_DATABASE_URL and MLFLOW_TRACKING_URI (as the cluster would give them)."""
    import httpx

    from tests.packaging.conftest import SEED_REQUEST

    out = tmp_path / "k8s"
    assert _k8s(cli, out).exit_code == 0
    (config,) = _docs(out / "configmap.yaml")
    pod_home = tmp_path / "pod-home"
    settings = {**config["data"], "FLOWSHIP_HOME": str(pod_home)}  # the pod's /tmp/flowship
    secret = {
        "FLOWSHIP_DATABASE_URL": f"sqlite:///{os.environ['FLOWSHIP_HOME']}/flowship.db",
        "MLFLOW_TRACKING_URI": recorded.uri,
    }
    (deployment,) = _docs(out / "deployment.yaml")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    server = _run_pod_command(command, {**settings, **secret}, tmp_path, "core").start()
    try:
        rows = {**SEED_REQUEST, "columns": [*SEED_REQUEST["columns"], "customer_id"]}
        rows["data"] = [[*row, f"c{i}"] for i, row in enumerate(SEED_REQUEST["data"])]
        answer = httpx.post(server.url + "/invocations", json=rows, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-flowship-deployment"] == "churn-ab; revision=1"
    finally:
        server.stop()

    (isvc,) = _docs(out / "kserve/2-challenger.yaml")
    command = isvc["spec"]["predictor"]["containers"][0]["command"]
    only_registry = {**settings, "MLFLOW_TRACKING_URI": recorded.uri}
    server = _run_pod_command(command, only_registry, tmp_path, "kserve").start()
    try:
        answer = httpx.post(server.url + "/invocations", json=SEED_REQUEST, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-flowship-model-version"] == "2"
    finally:
        server.stop()
