"""Small models trained once per test session and registered in a session MLflow store.

Each test still gets its own FLOWSHIP_HOME (so the ONNX and model caches start empty);
the ``store`` fixture points MLflow at the shared session store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests._caches import reset_caches

FEATURES = ["age", "tenure", "recency", "frequency", "monetary"]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass
class Store:
    uri: str
    data: pd.DataFrame  # every feature column plus "plan" (string) and "n_products" (long)
    labels: np.ndarray
    run_ids: dict[str, str]
    dirs: dict[str, Path]


def _data(n: int = 400) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n),
            "tenure": rng.normal(24, 10, n),
            "recency": rng.exponential(20, n),
            "frequency": rng.poisson(5, n).astype(float),
            "monetary": rng.gamma(2, 300, n),
        }
    )
    frame["n_products"] = rng.integers(1, 6, n).astype("int64")
    frame["plan"] = rng.choice(["basic", "plus", "pro"], n)
    churn = ((frame.recency / 20 - frame.tenure / 24 + rng.normal(0, 0.5, n)) > 0).astype(int)
    segment = np.digitize(frame.monetary, [400, 800])  # three classes
    return frame, churn.to_numpy(), segment


def _scaled_model():  # a custom pyfunc: no scikit-learn flavor, so no native backend
    import mlflow.pyfunc

    class Scaled(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return (model_input["age"] * 2.0).to_numpy()

    return Scaled()


def _optional_monetary(x: pd.DataFrame, y: Any) -> Any:
    """A signature whose 'monetary' column is optional (may be missing or NaN)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec("double", name, required=name != "monetary") for name in x.columns]
    return ModelSignature(Schema(inputs), infer_signature(x, y).outputs)


def _log(
    name: str,
    model: Any,
    x: pd.DataFrame,
    *,
    signature: bool = True,
    optional: bool = False,
    **kw: Any,
) -> str:
    import mlflow
    from mlflow.models import infer_signature

    if optional:
        sig = _optional_monetary(x, model.predict(x))
    else:
        sig = infer_signature(x, model.predict(x)) if signature else None

    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=x.head(5) if signature else None,
            signature=sig,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
            **kw,
        )
    return run.info.run_id


def _log_custom(x: pd.DataFrame) -> str:
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=_scaled_model(),
            registered_model_name="custom",
            signature=infer_signature(x, x.age.to_numpy()),
            pip_requirements=["mlflow"],
        )
    return run.info.run_id


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    home = tmp_path_factory.mktemp("predict-store")
    frame, churn, segment = _data()
    x = frame[FEATURES]
    run_ids: dict[str, str] = {}
    dirs: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        from flowship._mlflow import client

        c = client()
        uri = c._registry_uri
        mlflow.set_experiment("flowship")
        run_ids["lr"] = _log("lr", LogisticRegression(max_iter=500).fit(x, churn), x)
        lr2 = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, churn)
        run_ids["lr2"] = _log("lr", lr2, x)
        c.set_registered_model_alias("lr", "production", "1")
        c.set_registered_model_alias("lr", "staging", "2")
        c.transition_model_version_stage("lr", "1", "Production")
        c.transition_model_version_stage("lr", "2", "Staging")
        rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, segment)
        run_ids["rf"] = _log("rf", rf, x)
        gb = GradientBoostingClassifier(n_estimators=15, random_state=0).fit(x, churn)
        run_ids["gb"] = _log("gb", gb, x)
        run_ids["reg"] = _log("reg", LinearRegression().fit(x, frame.monetary * 0.1), x)
        rfr = RandomForestRegressor(n_estimators=8, random_state=0).fit(x, frame.tenure)
        run_ids["rfr"] = _log("rfr", rfr, x)
        # A FunctionTransformer with a Python function: skl2onnx cannot convert it.
        ft = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
        run_ids["ft"] = _log("ft", ft.fit(x.abs(), churn), x.abs())
        # Integer and string columns: the DataFrame path of the native backend.
        mixed_x = frame[["age", "tenure", "n_products", "plan"]]
        mixed = make_pipeline(
            ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough"),
            LogisticRegression(max_iter=1000),
        ).fit(mixed_x, churn)
        run_ids["mixed"] = _log("mixed", mixed, mixed_x)
        nosig = LogisticRegression(max_iter=500).fit(x, churn)
        run_ids["nosig"] = _log("nosig", nosig, x, signature=False)
        run_ids["custom"] = _log_custom(x)
        words = np.where(churn == 1, "churn", "stay")
        run_ids["words"] = _log("words", RandomForestClassifier(6, random_state=0).fit(x, words), x)
        pp = LogisticRegression(max_iter=500).fit(x, churn)
        run_ids["pp"] = _log("pp", pp, x, pyfunc_predict_fn="predict_proba")
        opt = LogisticRegression(max_iter=500).fit(x, churn)
        run_ids["opt"] = _log("opt", opt, x, optional=True)
        hgb = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, churn)
        run_ids["hgb"] = _log("hgb", hgb, x, optional=True)
        dirs["lr"] = home / "saved-lr"
        mlflow.sklearn.save_model(
            LogisticRegression(max_iter=500).fit(x, churn),
            str(dirs["lr"]),
            input_example=x.head(3),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
        reset_caches()
    return Store(uri=uri, data=frame, labels=churn, run_ids=run_ids, dirs=dirs)


@pytest.fixture
def store(
    session_store: Store, monkeypatch: pytest.MonkeyPatch, flowship_home: Path
) -> Iterator[Store]:
    """This test's FLOWSHIP_HOME, with MLflow pointed at the session's registry."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", session_store.uri)
    reset_caches()
    yield session_store
    reset_caches()
