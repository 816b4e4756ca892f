"""A session MLflow store for the deployment tests: ``churn`` versions that answer
constants (1.0, 2.0, 3.0: a row's answer says which version scored it), pyfunc models
that sleep, raise, or cannot even warm up, and helpers to apply deployments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests._caches import reset_caches
from tests.serving.conftest import frame, log_sklearn

PYFUNC = '''
import time
import mlflow.pyfunc
from mlflow.models import set_model


class Model(mlflow.pyfunc.PythonModel):
    """BEHAVIOUR"""

    def predict(self, context, model_input, params=None):
        behaviour = "BEHAVIOUR"
        if behaviour == "sleepy":
            time.sleep(0.05)
        elif behaviour == "raises" and (model_input["age"] != 0).any():
            raise RuntimeError("this shadow always fails on real data")
        elif behaviour == "unloadable":
            raise RuntimeError("this model cannot score anything")
        return (model_input["age"] * 0 + 7.0).to_numpy()


set_model(Model())
'''


WIDE_EXTRA = 80  # more than max_extra_columns (64)


@dataclass
class Store:
    home: Path
    uri: str
    data: pd.DataFrame


def _log_pyfunc(name: str, behaviour: str, folder: Path, x: pd.DataFrame) -> None:
    import mlflow
    from mlflow.models import infer_signature

    code = folder / f"{behaviour}_model.py"
    code.write_text(PYFUNC.replace("BEHAVIOUR", behaviour))
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            registered_model_name=name,
            signature=infer_signature(x, x.age.to_numpy()),
            pip_requirements=["mlflow"],
        )


@pytest.fixture(scope="session")
def deploy_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """churn v1/v2/v3 answer 1.0/2.0/3.0 (production -> 1, staging -> 2); sleepy, raises
    and unloadable are pyfunc models (version 1 each); wide reads churn's inputs and
    WIDE_EXTRA more (w0, w1, ...) and answers 9.0."""
    import mlflow
    from sklearn.dummy import DummyRegressor

    home = tmp_path_factory.mktemp("deploy-store")
    x = frame(50, seed=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        # flowship sets no process-wide MLflow URI: MLflow's fluent API needs this one.
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        from flowship._mlflow import client

        c = client()
        uri = c._registry_uri
        mlflow.set_experiment("flowship")
        for constant in (1.0, 2.0, 3.0):
            log_sklearn("churn", DummyRegressor(strategy="constant", constant=constant).fit(
                x, [constant] * len(x)), x)  # fmt: skip
        c.set_registered_model_alias("churn", "production", "1")
        c.set_registered_model_alias("churn", "staging", "2")
        for behaviour in ("sleepy", "raises", "unloadable"):
            _log_pyfunc(behaviour, behaviour, home, x)
        wide = x.assign(**{f"w{i}": 0.5 for i in range(WIDE_EXTRA)})
        log_sklearn("wide", DummyRegressor(strategy="constant", constant=9.0).fit(
            wide, [9.0] * len(wide)), wide)  # fmt: skip
        reset_caches()
    return Store(home=home, uri=uri, data=frame(40, seed=9))


@pytest.fixture
def store(deploy_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The session store as this test's MLflow store (its own flowship database)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", deploy_store.uri)
    reset_caches()
    return deploy_store


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SPLIT = """
name: churn
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 90}
  challenger: {ref: "@staging", weight: 10}
"""

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
