"""Several processes promoting versions of one model at the same moment: afterwards
exactly one version is in Production and the history lists every change in order."""

import os
import subprocess
import sys
import time
import warnings

import pytest

WORKER = """
import pathlib, sys, time
from flowship import _mlflow
from flowship.registry import promote
from flowship.store import db
_mlflow.client(); db.engine()          # pay for imports and connections before the start
version, gate = sys.argv[1], pathlib.Path(sys.argv[2])
(gate.parent / f"ready-{version}").touch()
while not gate.exists():
    time.sleep(0.002)
t = promote("ChurnPredictor", version, "production", force=True, reason=f"race {version}")
print(t.previous or "none")
"""

N = 4


def _race(tmp_path, churn_data, features, strong_model):
    from flowship.registry import register_estimator

    example = churn_data[features].head(5)
    for _ in range(N):
        register_estimator("ChurnPredictor", strong_model, example)
    gate = tmp_path / "go"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(v), str(gate)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in range(1, N + 1)
    ]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < N and time.time() < deadline:
        if any(w.poll() is not None for w in workers):
            break  # a worker died early: its error is reported below
        time.sleep(0.05)
    gate.touch()  # all start promoting at once
    outputs = [w.communicate(timeout=180) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
    return [out.strip().splitlines()[-1] for out, _ in outputs]


def _check_serialised(previous_by_worker):
    from mlflow import MlflowClient

    from flowship.registry import history, list_versions

    versions = list_versions("ChurnPredictor")
    in_production = [v.version for v in versions if v.stage == "Production"]
    assert len(in_production) == 1
    assert sorted(v.stage for v in versions) == ["Archived"] * (N - 1) + ["Production"]

    events = history("ChurnPredictor")
    assert [e.action for e in events] == ["promote"] * (2 * N - 1)  # nothing external
    promoted = [e.version for e in events if e.to_stage == "Production"]
    assert sorted(promoted) == [str(v) for v in range(1, N + 1)]
    assert promoted[-1] == in_production[0]
    # Each promotion archived exactly the one before it, right after it: no interleaving.
    holder = None
    for event in events:
        if event.to_stage == "Production":
            assert event.from_stage == "None"
            expected_archive, holder = holder, event.version
        else:
            assert (event.version, event.from_stage, event.to_stage) == (
                expected_archive,
                "Production",
                "Archived",
            )
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    # What each worker saw as "previous" matches the order the history records.
    assert sorted(previous_by_worker) == sorted(["none", *promoted[:-1]])

    client = MlflowClient()
    assert (
        str(client.get_model_version_by_alias("ChurnPredictor", "production").version)
        == (in_production[0])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = client.get_latest_versions("ChurnPredictor", stages=["Production"])
    assert [str(v.version) for v in native] == in_production


@pytest.mark.slow
def test_concurrent_promotions_on_sqlite(tmp_path, churn_data, features, strong_model):
    _check_serialised(_race(tmp_path, churn_data, features, strong_model))


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_promotions_on_postgresql(pg_url, tmp_path, churn_data, features, strong_model):
    from flowship.store import db

    assert db.engine().dialect.name == "postgresql"
    _check_serialised(_race(tmp_path, churn_data, features, strong_model))
