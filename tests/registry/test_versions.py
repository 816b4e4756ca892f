from datetime import UTC, datetime, timedelta

import pytest

from flowship.errors import InvalidInput, ModelNotFound, UsageError, VersionNotFound
from flowship.registry import (
    get_version,
    list_models,
    list_versions,
    register,
    register_estimator,
)


def test_register_estimator_logs_signature_and_metrics(churn_data, features, strong_model):
    info = register_estimator(
        "ChurnPredictor",
        strong_model,
        churn_data[features].head(5),
        metrics={"val_auc": 0.81},
        params={"depth": 3},
        description="gradient boosting",
        tags={"team": "growth"},
    )
    assert (info.name, info.version, info.stage, info.aliases) == (
        "ChurnPredictor",
        "1",
        "None",
        [],
    )
    assert info.metrics == {"val_auc": 0.81}
    assert info.description == "gradient boosting"
    assert info.tags["team"] == "growth"
    assert info.created_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - info.created_at) < timedelta(minutes=5)
    assert info.run_id

    import mlflow

    model_info = mlflow.models.get_model_info("models:/ChurnPredictor/1")
    assert [c.name for c in model_info.signature.inputs] == features
    assert model_info.signature.outputs is not None
    loaded = mlflow.pyfunc.load_model("models:/ChurnPredictor/1")
    assert len(loaded.predict(churn_data[features].head(3))) == 3


def test_list_versions_and_models(register_two):
    register_two()
    versions = list_versions("ChurnPredictor")
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[1].metrics == {"train_auc": 0.9}
    [model] = list_models()
    assert (model.name, model.latest_version, model.versions) == ("ChurnPredictor", "2", 2)
    assert model.production is None
    assert get_version("ChurnPredictor", 2).version == "2"


def test_register_from_run_uri_and_local_directory(churn_data, features, strong_model, tmp_path):
    import mlflow

    first = register_estimator("A", strong_model, churn_data[features].head(5))
    again = register(f"runs:/{first.run_id}/model", "B", description="copied")
    assert (again.name, again.version, again.description) == ("B", "1", "copied")

    from_models = register("models:/A/1", "C")
    assert from_models.version == "1"

    path = tmp_path / "saved"
    from flowship.registry.versions import skops_trusted_types

    trusted = skops_trusted_types(strong_model)
    mlflow.sklearn.save_model(strong_model, str(path), skops_trusted_types=trusted)
    local = register(str(path), "D")
    local_uri = register(path.as_uri(), "D")
    assert (local.version, local_uri.version) == ("1", "2")
    # The registry points at a copy under FLOWSHIP_HOME, not at the user's folder.
    assert str(path) not in local.source
    loaded = mlflow.pyfunc.load_model("models:/D/2")
    assert len(loaded.predict(churn_data[features].head(2))) == 2


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("/no/such/dir", "is not a directory"),
        ("runs:/0123456789abcdef/model", "Cannot register"),
        ("models:/Nope/1", "Cannot register"),
        ("s3-but-not-really", "is not a directory"),
    ],
)
def test_register_bad_sources(source, needle):
    with pytest.raises(UsageError, match=needle):
        register(source, "X")


def test_register_directory_without_mlmodel(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"not a model")
    with pytest.raises(UsageError, match="has no MLmodel file"):
        register(str(tmp_path), "X")


@pytest.mark.parametrize("name", ["", "a/b", "x'; drop", "a@b", "x" * 300, "\n"])
def test_hostile_model_names_are_refused(name):
    with pytest.raises(UsageError, match="Invalid model name"):
        list_versions(name)


def test_unknown_model_and_version(register_two):
    with pytest.raises(ModelNotFound, match="'Nope' is not registered"):
        list_versions("Nope")
    register_two()
    with pytest.raises(VersionNotFound, match="has no version 9"):
        get_version("ChurnPredictor", 9)
    with pytest.raises(VersionNotFound):
        get_version("ChurnPredictor", "1; drop")


def test_register_estimator_rejects_unfitted_and_bad_examples(churn_data, features):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidInput, match="not fitted"):
        register_estimator("X", LogisticRegression(), churn_data[features].head())
    with pytest.raises(InvalidInput, match="has no predict"):
        register_estimator("X", object(), churn_data[features].head())
    fitted = LogisticRegression().fit(churn_data[features], churn_data["churned"])
    with pytest.raises(InvalidInput, match="non-empty pandas DataFrame"):
        register_estimator("X", fitted, churn_data[features].head(0))
    with pytest.raises(InvalidInput, match="cannot predict on the input example"):
        register_estimator("X", fitted, churn_data[["age"]].head())
    with pytest.raises(ModelNotFound):
        list_versions("X")  # nothing was half-registered
