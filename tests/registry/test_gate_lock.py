"""Gates run outside the model's lock: a promotion whose gate scores a slow model does
not stop a batch run from committing to the same SQLite state database meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest

from flowship.quickstart.data import FEATURES

WAIT_LIMIT_S = 300
# MLflow asks for type hints on a PythonModel's predict; this one needs none.
pytestmark = pytest.mark.filterwarnings("ignore:.*Add type hints")


with warnings.catch_warnings():  # MLflow asks for type hints on predict; not needed here
    warnings.simplefilter("ignore")

    class SlowModel(mlflow.pyfunc.PythonModel):
        """Scores only once the test lets it: a gate as slow as the test wants."""

        def __init__(self, folder: str) -> None:
            self.folder = folder

        def predict(self, context, model_input, params=None):
            folder = Path(self.folder)
            (folder / "started").touch()
            deadline = time.monotonic() + WAIT_LIMIT_S
            while not (folder / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return [0] * len(model_input)


def _register_slow(folder: Path, example):
    from mlflow.models import infer_signature

    from flowship import _mlflow

    client = _mlflow.client()
    # A NumPy output: a list would make MLflow probe pyspark.sql.connect, which exits the
    # process when grpc is missing.
    signature = infer_signature(example, np.zeros(len(example), dtype="int64"))
    experiment = client.get_experiment_by_name("flowship").experiment_id
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SlowModel(str(folder)),
            signature=signature,
            pip_requirements=[],
        )
    mlflow.register_model(info.model_uri, "SlowGate")


def test_a_slow_gate_does_not_block_a_batch_run(register_two, churn_data, tmp_path, flowship_home):
    from flowship.registry import history, promote

    register_two()
    folder = tmp_path / "gate"
    folder.mkdir()
    _register_slow(folder, churn_data[list(FEATURES)].head(5))
    evaluation = tmp_path / "eval.csv"
    churn_data[[*FEATURES, "churned"]].head(50).to_csv(evaluation, index=False)
    scoring = tmp_path / "input.parquet"
    churn_data[["customer_id", *FEATURES]].head(200).to_parquet(scoring)

    outcome: dict[str, object] = {}

    def promoting() -> None:
        try:
            outcome["done"] = promote(
                "SlowGate",
                1,
                "staging",
                gates=["accuracy>=0"],
                evaluation_data=str(evaluation),
                target="churned",
            )
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    promoter = threading.Thread(target=promoting)
    promoter.start()
    try:
        deadline = time.monotonic() + 120
        while not (folder / "started").exists() and time.monotonic() < deadline:
            assert promoter.is_alive(), outcome
            time.sleep(0.05)
        assert (folder / "started").exists(), "the gate never started scoring"

        # The gate is running now. A batch run in another process writes its run
        # record to the same SQLite database, start and finish.
        flowship = Path(sys.executable).with_name("flowship")
        batch = subprocess.run(
            [
                str(flowship),
                "score",
                "--model",
                "models:/ChurnPredictor/1",
                "--input",
                str(scoring),
                "--id",
                "customer_id",
                "--output",
                str(tmp_path / "out"),
                "--json",
            ],  # fmt: skip
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert batch.returncode == 0, batch.stderr[-2000:]
        assert promoter.is_alive() and not (folder / "release").exists()
    finally:
        (folder / "release").touch()
        promoter.join(timeout=WAIT_LIMIT_S)

    assert "error" not in outcome, outcome.get("error")
    events = history("SlowGate")
    assert [(e.version, e.to_stage) for e in events] == [("1", "Staging")]
    assert events[0].gates and events[0].gates[0]["name"].startswith("accuracy")
