"""Rollouts against a real server answering real requests, with the controller as a
real process: a healthy candidate reaches 100% and Production, one that fails 20% of
requests is rolled back within one bake, a controller killed mid-rollout and restarted
finishes with every step taken once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from tests.deployments._helpers import deployment_server
from tests.serving._server import server_env

pytestmark = pytest.mark.slow
FEATURES = ["age", "tenure", "recency", "plan"]
FLAKY = '''
import mlflow.pyfunc
from mlflow.models import set_model


class Model(mlflow.pyfunc.PythonModel):
    """Fails whenever a row's age is above 0.84: about 20% of single-row requests."""

    def predict(self, context, model_input, params=None):
        if (model_input["age"] > 0.8416).any():
            raise RuntimeError("flaky candidate")
        return (model_input["age"] * 0 + 1.0).to_numpy()  # answers like the champion


set_model(Model())
'''


class Traffic:
    """Single-row requests from random customers, in a thread, until stopped (bounded)."""

    def __init__(self, url: str, store) -> None:
        self.url, self.rows = url, store.data[FEATURES].values.tolist()
        self.sent, self.stop_flag = 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(1)
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 240
            while not self.stop_flag.is_set() and time.monotonic() < deadline:
                age = float(rng.normal())
                row = [int(rng.integers(1 << 30)), age, *self.rows[self.sent % 40][1:]]
                body = {"columns": ["customer_id", *FEATURES], "data": [row]}
                with contextlib.suppress(httpx.HTTPError):
                    client.post(self.url + "/invocations", json=body)
                self.sent += 1
                time.sleep(0.004)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        self.thread.join()


@pytest.fixture
def served(cli, store, deployment, flowship_home, tmp_path):
    server = deployment_server(
        "churn", "--poll-interval", "0.3",
        home=flowship_home, store=store, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    yield server
    server.stop()


def controller(store, home, tmp_path, name: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", "from flowship.cli import main; main()", "rollout", "run",
            "churn", "--interval", "0.3", "--lease", "2"]  # fmt: skip
    out = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(argv, env=server_env(home, store.uri), stdout=out, stderr=out)


def wait_for(cli, check, timeout: float = 150.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = json.loads(cli("rollout", "status", "churn", "--json").stdout)
        if check(view):
            return view
        time.sleep(0.3)
    raise AssertionError(f"rollout did not get there in {timeout}s: {view}")


def start(cli, *extra: str) -> None:
    result = cli(
        "rollout", "start", "churn", "--candidate", "challenger", "--steps", "10,50,100",
        "--bake", "3s", "--min-requests", "20", *extra,
        # Both variants answer a constant; on a shared CI machine p99s are noise.
        "--guardrail", "p99_latency_ratio<=20",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def twin(store):
    """churn version 4 answers like version 1 (Production): a healthy candidate."""
    from sklearn.dummy import DummyRegressor

    from flowship._mlflow import client
    from tests.serving.conftest import log_sklearn

    client()  # this test's store becomes MLflow's process-wide one before registering
    x = store.data[FEATURES]
    log_sklearn("churn", DummyRegressor(strategy="constant", constant=1.0).fit(x, [1.0] * 40), x)
    client().set_registered_model_alias("churn", "staging", "4")


def test_healthy_candidate_reaches_100_and_production_even_if_the_controller_is_killed(
    cli, twin, served, store, flowship_home, tmp_path
):
    # The servers' /metrics are read too (at 100%, against the champion's 50% window).
    start(
        cli, "--metrics-url", served.url + "/metrics", "--guardrail", "server_p99_latency_ratio<=20"
    )
    with Traffic(served.url, store):
        first = controller(store, flowship_home, tmp_path, "controller-1")
        try:
            wait_for(cli, lambda v: v["step"] >= 2)
        finally:
            first.kill()  # SIGKILL mid-rollout: no cleanup, the lease stays behind
            first.wait()
        second = controller(store, flowship_home, tmp_path, "controller-2")
        try:
            view = wait_for(cli, lambda v: v["state"] != "running")
        finally:
            second.kill()
            second.wait()
    assert view["state"] == "completed", view
    steps = [e["step"] for e in view["events"] if e["action"] in ("start", "step")]
    assert steps == [1, 2, 3]  # every step exactly once, none skipped
    for event in [e for e in view["events"] if e["action"] in ("step", "complete")]:
        rail = next(g for g in event["guardrails"] if g["metric"] == "server_error_rate_increase")
        assert rail["passed"] is True and rail["value"] == 0.0, event
    versions = json.loads(cli("versions", "churn", "--json").stdout)
    assert {v["version"]: v["stage"] for v in versions}["4"] == "Production"
    shown = json.loads(cli("deployment", "show", "churn", "--json").stdout)
    assert shown["spec"]["variants"]["champion"]["weight"] == 100.0
    history = json.loads(cli("deployment", "history", "churn", "--json").stdout)
    weights = [h["spec"]["variants"]["challenger"]["weight"] for h in history]
    assert weights == [0.0, 10.0, 50.0, 100.0, 0.0]


def test_a_candidate_failing_20_percent_is_rolled_back_within_one_bake(
    cli, store, flowship_home, tmp_path
):
    import mlflow
    from mlflow.models import infer_signature

    from flowship._mlflow import client

    client()  # this test's store becomes MLflow's process-wide one before registering
    code = tmp_path / "flaky_model.py"
    code.write_text(FLAKY)
    x = store.data[FEATURES]
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model", python_model=str(code), registered_model_name="flaky",
            signature=infer_signature(x, x.age.to_numpy()), pip_requirements=["mlflow"],
        )  # fmt: skip
    spec = tmp_path / "flaky.yaml"
    spec.write_text(
        "name: churn\nmodel: churn\nkey: customer_id\nvariants:\n"
        "  champion: {ref: '@production', weight: 100}\n"
        "  challenger: {ref: 'models:/flaky/1', weight: 0}\n"
        "log: {table: prediction_log, flush_interval_s: 0.3}\n"
    )
    assert cli("deployment", "apply", spec).exit_code == 0
    server = deployment_server(
        "churn", "--poll-interval", "0.3",
        home=flowship_home, store=store, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    try:
        start(cli, "--bake", "30s")
        began = time.monotonic()
        with Traffic(server.url, store):
            proc = controller(store, flowship_home, tmp_path, "controller")
            try:
                view = wait_for(cli, lambda v: v["state"] != "running", timeout=60)
            finally:
                proc.kill()
                proc.wait()
        assert time.monotonic() - began < 30 + 10  # within one bake window (and a poll)
    finally:
        server.stop()
    assert view["state"] == "rolled_back", view
    assert "error_rate_increase" in view["reason"]
    shown = json.loads(cli("deployment", "show", "churn", "--json").stdout)
    assert shown["spec"]["variants"]["challenger"]["weight"] == 0.0
    versions = json.loads(cli("versions", "churn", "--json").stdout)
    assert {v["version"]: v["stage"] for v in versions}["1"] == "Production"
