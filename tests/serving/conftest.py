"""A session MLflow store with the models the serving tests serve, and one shared
``flowship serve`` subprocess for the tests that do not change the registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._caches import reset_caches
from tests.serving._server import Server

FEATURES = ["age", "tenure", "recency", "plan"]
SLOW_MODEL = '''
import time
import mlflow.pyfunc
from mlflow.models import set_model


class Slow(mlflow.pyfunc.PythonModel):
    """Sleeps for the largest value of column 'delay', then answers delay * 2."""

    def predict(self, context, model_input, params=None):
        time.sleep(float(model_input["delay"].max()))
        return (model_input["delay"] * 2.0).to_numpy()


set_model(Slow())
'''


@dataclass
class Store:
    home: Path
    uri: str
    data: pd.DataFrame
    expected: dict[str, np.ndarray]  # model version label -> predictions on ``data``


def frame(n: int = 64, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES[:3])
    data["plan"] = rng.integers(0, 3, n).astype("int64")
    return data


def log_sklearn(name: str, model, x: pd.DataFrame) -> str:
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            signature=infer_signature(x, model.predict(x)),
            input_example=x.head(3),
            pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
        )
    return info.registered_model_version or run.info.run_id


def log_slow(name: str, folder: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature

    code = folder / "slow_model.py"
    code.write_text(SLOW_MODEL)
    x = pd.DataFrame({"delay": [0.0, 0.1]})
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            registered_model_name=name,
            signature=infer_signature(x, x.delay.to_numpy()),
            pip_requirements=["mlflow"],
        )


@pytest.fixture(scope="session")
def serving_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Models: churn v1 (production) and v2 (a different fit), slow v1 (production)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("serving-store")
    x = frame(400, seed=1)
    y1 = (x.age + x.tenure > 0).astype(int)
    y2 = (x.recency - x.plan > -1).astype(int)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        from flowship._mlflow import client

        c = client()
        uri = c._registry_uri
        mlflow.set_experiment("flowship")
        m1 = LogisticRegression().fit(x, y1)
        m2 = LogisticRegression().fit(x, y2)
        log_sklearn("churn", m1, x)
        log_sklearn("churn", m2, x)
        c.set_registered_model_alias("churn", "production", "1")
        c.transition_model_version_stage("churn", "1", "Production")
        log_slow("slow", home)
        c.set_registered_model_alias("slow", "production", "1")
        reset_caches()
    data = frame()
    expected = {"1": m1.predict(data), "2": m2.predict(data)}
    expected["proba1"] = m1.predict_proba(data)[:, 1]
    return Store(home=home, uri=uri, data=data, expected=expected)


@pytest.fixture(scope="session")
def server(serving_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """flowship serve models:/churn@production (strict about extra columns by default)."""
    home = tmp_path_factory.mktemp("server-home")
    srv = Server.flowship(
        "models:/churn@production",
        "--max-body-bytes", str(1024 * 1024),
        home=home,
        tracking_uri=serving_store.uri,
        log=home / "server.log",
    )  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


def split_body(data: pd.DataFrame) -> dict:
    return {"dataframe_split": {"columns": list(data.columns), "data": data.values.tolist()}}


os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
