"""A session MLflow store with the models the packaging tests export, package and describe.

``churn`` has the seed's request columns (age, tenure, recency): version 1 a logistic
regression with a baseline attached, version 2 a random forest (a float32 graph).
``shift`` converts faithfully only in double precision; ``custom`` (a pyfunc) and
``mixed`` (a string column) cannot be exported to ONNX.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._caches import reset_caches

SEED_COLUMNS = ["age", "tenure", "recency"]
SEED_REQUEST = {"columns": SEED_COLUMNS, "data": [[35, 24, 10], [42, 36, 5]]}
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass
class Store:
    uri: str
    data: pd.DataFrame


def churn_data(n: int = 300, seed: int = 11) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype("int64"),
            "tenure": rng.integers(0, 72, n).astype("int64"),
            "recency": rng.integers(0, 120, n).astype("int64"),
        }
    )
    churn = ((frame.recency / 30 - frame.tenure / 24 + rng.normal(0, 0.7, n)) > 0).astype(int)
    return frame, churn.to_numpy()


def _log(name: str, model, x: pd.DataFrame, **kw) -> str:
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=x.head(3),
            signature=infer_signature(x, model.predict(x)),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
            **kw,
        )
    return run.info.run_id


def _log_custom(x: pd.DataFrame) -> None:
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    class Doubled(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return (model_input["age"] * 2.0).to_numpy()

    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Doubled(),
            registered_model_name="custom",
            signature=infer_signature(x, x.age.to_numpy()),
            pip_requirements=["mlflow"],
        )


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    home = tmp_path_factory.mktemp("packaging-store")
    frame, churn = churn_data()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        # flowship leaves MLflow's process default alone: the fluent calls below name
        # the session store through the environment.
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        from flowship._mlflow import client
        from flowship.registry.baselines import log_baseline

        c = client()
        uri = c._registry_uri
        mlflow.set_experiment("flowship")
        run = _log("churn", LogisticRegression(max_iter=1000).fit(frame, churn), frame)
        baseline = home / "baseline.parquet"
        frame.to_parquet(baseline)
        log_baseline("churn", "1", run, baseline)
        c.update_model_version("churn", "1", description="Predicts churn within 30 days.")
        c.log_param(run, "C", 1.0)
        c.log_param(run, "max_iter", 1000)
        c.set_registered_model_alias("churn", "production", "1")
        rf = RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0)
        _log("churn", rf.fit(frame, churn), frame)
        # Features near 10,000 whose difference decides: float32 rounds away the signal.
        rng = np.random.default_rng(5)
        shift = pd.DataFrame(
            {"a": 10_000 + rng.normal(0, 1, 300), "b": 10_000 + rng.normal(0, 1, 300)}
        )
        label = (shift.a - shift.b > 0).astype(int)
        _log("shift", LogisticRegression(C=1e4, max_iter=5000).fit(shift, label), shift)
        _log_custom(frame.astype("float64"))
        mixed_x = frame.assign(plan=np.where(churn == 1, "basic", "pro"))
        mixed = make_pipeline(
            ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough"),
            LogisticRegression(max_iter=1000),
        ).fit(mixed_x, churn)
        _log("mixed", mixed, mixed_x)
        reset_caches()
    return Store(uri=uri, data=frame)


@pytest.fixture
def store(
    session_store: Store, monkeypatch: pytest.MonkeyPatch, flowship_home: Path
) -> Iterator[Store]:
    """This test's FLOWSHIP_HOME, with MLflow pointed at the session's registry."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", session_store.uri)
    reset_caches()
    yield session_store
    reset_caches()
