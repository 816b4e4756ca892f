"""Shared data and fitted estimators for the lifecycle tests (trained once per session;
each test still registers into its own FLOWSHIP_HOME)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory):
    """An empty, fully migrated MLflow SQLite store: creating one takes ~2 s, copying
    it takes milliseconds, and every test still gets its own store."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _fresh_mlflow_store(flowship_home, _mlflow_template):
    flowship_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(_mlflow_template, flowship_home / "mlflow.db")


@pytest.fixture(scope="session")
def churn_data():
    from flowship.quickstart.data import churn_frame

    return churn_frame(n=600, seed=7)


@pytest.fixture(scope="session")
def features():
    from flowship.quickstart.data import FEATURES

    return list(FEATURES)


@pytest.fixture(scope="session")
def weak_model(churn_data, features):
    from sklearn.linear_model import LogisticRegression

    # Only age and tenure: clearly worse than the strong model, better than chance.
    X = churn_data[features].copy()
    X[features[2:]] = 0.0
    return LogisticRegression(max_iter=500).fit(X, churn_data["churned"])


@pytest.fixture(scope="session")
def strong_model(churn_data, features):
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(
        churn_data[features], churn_data["churned"]
    )


@pytest.fixture
def register_two(churn_data, features, weak_model, strong_model):
    """Register the weak model as version 1 and the strong one as version 2."""
    from flowship.registry import register_estimator

    def run(name: str = "ChurnPredictor"):
        example = churn_data[features].head(5)
        v1 = register_estimator(name, weak_model, example, metrics={"train_auc": 0.7})
        v2 = register_estimator(name, strong_model, example, metrics={"train_auc": 0.9})
        return v1, v2

    return run
