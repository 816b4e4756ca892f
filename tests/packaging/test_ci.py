"""``flowship ci init``: actionlint and the GitHub workflow schema accept the workflow;
``flowship smoke-test`` passes a healthy server and fails each broken check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.packaging.conftest import SEED_REQUEST
from tests.serving._server import Server

BIN = Path(sys.executable).parent


def _actionlint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "actionlint", "-no-color", str(path)], capture_output=True, text=True, timeout=120
    )


def _schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_passes_actionlint_and_the_schema(cli, tmp_path):
    out = tmp_path / ".github" / "workflows"
    result = cli("ci", "init", "--provider", "github", "--model", "ChurnPredictor", "-o", out)
    assert result.exit_code == 0, result.stderr
    path = out / "flowship-ChurnPredictor.yml"
    linted = _actionlint(path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    checked = _schema(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    flow = yaml.safe_load(path.read_text())
    assert set(flow[True]) == {"push", "workflow_dispatch"}  # YAML 1.1 reads "on" as True
    assert flow[True]["workflow_dispatch"]["inputs"]["action"]["options"] == ["deploy", "rollback"]
    deploy = [s.get("run", "") for s in flow["jobs"]["deploy"]["steps"]]
    script = "\n".join(deploy)
    order = ["python train.py", "flowship register", "--to staging", "flowship serve",
             "flowship smoke-test", "--to production --expect-current", "curl"]  # fmt: skip
    positions = [script.index(s) for s in order]
    assert positions == sorted(positions)
    assert "flowship rollback" in json.dumps(flow["jobs"]["rollback"])
    assert flow["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert "${{ inputs.reason }}" not in script  # user input reaches scripts only via env


def test_the_linters_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.head_commit.message }}\n"
        "      - uses: actions/checkout@v5\n        with: {fetch-depht: 1}\n"
    )
    assert _actionlint(bad).returncode != 0
    no_jobs = tmp_path / "no-jobs.yml"
    no_jobs.write_text("on: push\nname: x\n")
    assert _schema(no_jobs).returncode != 0


def test_rerun_replaces_its_own_file_but_not_yours(cli, tmp_path):
    out = tmp_path / "wf"
    assert cli("ci", "init", "--model", "churn", "-o", out).exit_code == 0
    assert cli("ci", "init", "--model", "churn", "-o", out, "--branch", "prod").exit_code == 0
    assert "branches: [prod]" in (out / "flowship-churn.yml").read_text()
    (out / "flowship-mine.yml").write_text("name: mine\n")
    result = cli("ci", "init", "--model", "mine", "-o", out)
    assert result.exit_code == 2 and "was not written by flowship" in result.stderr
    assert (out / "flowship-mine.yml").read_text() == "name: mine\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "churn", "--provider", "gitlab"], "Unknown CI provider 'gitlab'."),
        (["--model", "a b"], "--model 'a b' is not allowed here."),
        (["--model", "x${{ secrets.A }}"], "is not allowed here."),
        (["--model", "churn", "--branch", "main\nx"], "--branch"),
        (["--model", "churn", "--python", "3.9"], "--python '3.9' is not allowed here."),
        (["--model", "churn", "--train-command", "echo ${{ secrets.X }}"], "${{ }}"),
        (["--model", "churn", "--train-command", ""], "one non-empty line"),
    ],
)
def test_bad_input_writes_nothing(cli, tmp_path, args, message):
    out = tmp_path / "wf"
    result = cli("ci", "init", *args, "-o", out)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.fixture
def server(store, flowship_home, tmp_path):
    running = Server.flowship(
        "models:/churn/1", "--output", "proba",
        home=flowship_home, tracking_uri=store.uri, log=tmp_path / "serve.log",
    ).start()  # fmt: skip
    yield running
    running.stop()


def test_smoke_test_passes_a_healthy_server(server, cli):
    result = cli("smoke-test", server.url, "--model", "churn", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["passed"] is True and body["version"] == "1"
    assert [c["name"] for c in body["checks"]] == ["ready", "metadata", "predict", "latency"]
    assert "3 predictions" in body["checks"][2]["detail"]  # the logged input example's rows
    table = cli("smoke-test", server.url)  # the model name from the server itself
    assert table.exit_code == 0 and "latency" in table.stdout


def test_smoke_test_fails_each_broken_check(server, cli, tmp_path):
    wrong = cli("smoke-test", server.url, "--model", "other")
    assert wrong.exit_code == 1
    assert "failed at metadata: /v2/models/other answered 404" in wrong.stderr
    example = tmp_path / "bad.json"
    example.write_text(json.dumps({"columns": ["age"], "data": [[1]]}))
    bad = cli("smoke-test", server.url, "--example", example)
    assert bad.exit_code == 1 and "failed at predict: /invocations answered 400" in bad.stderr
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED_REQUEST))
    slow = cli("smoke-test", server.url, "--example", seed, "--max-p95-ms", "0.001")
    assert slow.exit_code == 1 and "failed at latency" in slow.stderr
    ok = cli("smoke-test", server.url, "--example", seed, "--requests", "3")
    assert ok.exit_code == 0, ok.stderr


def test_smoke_test_of_a_server_that_is_not_there(cli):
    from tests.serving._server import free_port

    result = cli("smoke-test", f"http://127.0.0.1:{free_port()}", "--wait", "1")
    assert result.exit_code == 1 and "failed at ready" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://x"], "is not an http(s) URL"),
        (["http://127.0.0.1:1", "--requests", "0"], "--requests 1 to 10000"),
        (["http://127.0.0.1:1", "--example", "missing.json"], "Cannot read missing.json"),
    ],
)
def test_smoke_test_bad_input(cli, args, message):
    result = cli("smoke-test", *args)
    assert result.exit_code == 2 and message in result.stderr
