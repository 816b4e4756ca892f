"""Shared data and fitted estimators for the lifecycle tests (trained once per session;
each test still registers into its own FLOWSHIP_HOME)."""

from __future__ import annotations

import shutil

import pytest

from tests._caches import reset_caches


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


@pytest.fixture(scope="session")
def _two_versions_home(
    tmp_path_factory, _mlflow_template, churn_data, features, weak_model, strong_model
):
    """A FLOWSHIP_HOME holding ChurnPredictor v1 (weak) and v2 (strong), built once;
    tests get a copy of its databases (the artifacts they read stay here)."""
    from flowship.registry import register_estimator

    home = tmp_path_factory.mktemp("home-two-versions")
    shutil.copy(_mlflow_template, home / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.delenv("FLOWSHIP_DATABASE_URL", raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        example = churn_data[features].head(5)
        register_estimator("ChurnPredictor", weak_model, example, metrics={"train_auc": 0.7})
        register_estimator("ChurnPredictor", strong_model, example, metrics={"train_auc": 0.9})
        reset_caches()
    reset_caches()
    return home


@pytest.fixture
def register_two(flowship_home, _two_versions_home):
    """Register the weak model as version 1 and the strong one as version 2 (by
    copying a store where that was done once: registering costs seconds)."""
    from flowship.registry import get_version

    def run():
        for db_file in ("mlflow.db", "flowship.db"):
            shutil.copy(_two_versions_home / db_file, flowship_home / db_file)
        reset_caches()
        return get_version("ChurnPredictor", 1), get_version("ChurnPredictor", 2)

    return run
