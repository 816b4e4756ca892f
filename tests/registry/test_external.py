"""Changes made in MLflow behind flowship's back are noticed and recorded."""

import warnings

import pytest
from mlflow import MlflowClient

from flowship.errors import GateFailed
from flowship.registry import history, list_versions, promote, rollback, stage_at


def _stages(name="ChurnPredictor"):
    return {v.version: v.stage for v in list_versions(name)}


def _native_production(name="ChurnPredictor"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [str(v.version) for v in MlflowClient().get_latest_versions(name, ["Production"])]


def _external(name="ChurnPredictor"):
    return [
        (e.version, e.from_stage, e.to_stage)
        for e in history(name)
        if e.action == "external" and e.actor == "external"
    ]


def test_alias_moved_in_the_mlflow_ui(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production")
    MlflowClient().set_registered_model_alias("ChurnPredictor", "production", "2")
    assert _stages() == {"1": "Archived", "2": "Production"}
    assert _external() == [("2", "None", "Production"), ("1", "Production", "Archived")]
    events = history("ChurnPredictor")
    assert "alias 'production' set on it in MLflow" in events[-2].reason
    # The other signals were brought in line: the seed's URI follows the alias.
    assert _native_production() == ["2"]
    # Looking again records nothing new.
    assert len(history("ChurnPredictor")) == len(events)


def test_seed_code_transition_with_archive_existing(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "staging")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MlflowClient().transition_model_version_stage(
            name="ChurnPredictor", version=2, stage="Production", archive_existing_versions=True
        )
    assert _stages() == {"1": "Archived", "2": "Production"}
    assert set(_external()) == {("2", "Staging", "Production"), ("1", "Production", "Archived")}
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("ChurnPredictor", "production").version) == "2"
    aliases = client.get_registered_model("ChurnPredictor").aliases
    assert "staging" not in aliases


def test_native_transition_without_archiving_keeps_one_production(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MlflowClient().transition_model_version_stage("ChurnPredictor", "2", "Production")
    assert _stages() == {"1": "Archived", "2": "Production"}
    assert _native_production() == ["2"]


def test_alias_deleted(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production")
    MlflowClient().delete_registered_model_alias("ChurnPredictor", "production")
    assert _stages()["1"] == "Archived"
    assert _external() == [("1", "Production", "Archived")]


def test_stages_set_before_flowship_ever_looked(register_two):
    register_two()
    client = MlflowClient()
    client.set_registered_model_alias("ChurnPredictor", "staging", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.transition_model_version_stage("ChurnPredictor", "1", "Production")
    assert _stages() == {"1": "Production", "2": "Staging"}
    assert set(_external()) == {("1", "None", "Production"), ("2", "None", "Staging")}
    assert "first looked" in history("ChurnPredictor")[0].reason


def test_deleted_version_is_recorded_and_skipped_by_rollback(register_two, churn_data, features):
    from flowship.registry import register_estimator

    _v1, _v2 = register_two()
    register_estimator("ChurnPredictor", _fitted(churn_data, features), churn_data[features].head())
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "production")
    promote("ChurnPredictor", 3, "production")
    MlflowClient().delete_model_version("ChurnPredictor", "2")
    assert _stages() == {"1": "Archived", "3": "Production"}
    assert _external() == [("2", "Archived", "Deleted")]
    t = rollback("ChurnPredictor")
    assert t.version == "1"  # 2 was before 3, but it is gone


def test_external_events_survive_a_refused_promotion(register_two, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    register_two()
    promote("ChurnPredictor", 1, "production")
    MlflowClient().set_registered_model_alias("ChurnPredictor", "staging", "2")
    with pytest.raises(GateFailed):
        promote("ChurnPredictor", 2, "production", checklist=["stakeholders_notified"])
    assert _external() == [("2", "None", "Staging")]


def test_stage_at_answers_from_history(register_two):
    from datetime import UTC, datetime, timedelta

    register_two()
    before = datetime.now(UTC)
    promote("ChurnPredictor", 1, "production")
    middle = datetime.now(UTC)
    promote("ChurnPredictor", 2, "production")
    assert stage_at("ChurnPredictor", before - timedelta(days=1)) is None
    assert stage_at("ChurnPredictor", middle) == "1"
    assert stage_at("ChurnPredictor", middle.isoformat()) == "1"
    assert stage_at("ChurnPredictor", datetime.now(UTC) + timedelta(days=1)) == "2"
    assert stage_at("ChurnPredictor", middle, stage="archived") is None


def _fitted(churn_data, features):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit(churn_data[features], churn_data["churned"])


def test_history_outlives_a_model_deleted_in_mlflow(register_two):
    from flowship.errors import ModelNotFound

    register_two()
    promote("ChurnPredictor", 1, "production")
    MlflowClient().delete_registered_model("ChurnPredictor")
    assert [e.to_stage for e in history("ChurnPredictor")] == ["Production"]
    from datetime import UTC, datetime

    assert stage_at("ChurnPredictor", datetime.now(UTC)) == "1"
    with pytest.raises(ModelNotFound):
        history("NeverExisted")
    with pytest.raises(ModelNotFound):
        stage_at("NeverExisted", datetime.now(UTC))
    with pytest.raises(ModelNotFound):
        list_versions("ChurnPredictor")


def test_the_seeds_own_rollback_code_is_recorded(register_two):
    """The seed's rollback_model() with plain MLflow (its search by current_stage no
    longer works in MLflow 3, so the previous version is named directly)."""
    register_two()
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "production")
    client = MlflowClient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        current_prod = client.get_latest_versions("ChurnPredictor", stages=["Production"])[0]
        client.transition_model_version_stage(
            name="ChurnPredictor", version=current_prod.version, stage="Archived"
        )
        client.transition_model_version_stage(
            name="ChurnPredictor", version="1", stage="Production"
        )
    assert _stages() == {"1": "Production", "2": "Archived"}
    assert _external() == [("1", "Archived", "Production"), ("2", "Production", "Archived")]
    assert str(client.get_model_version_by_alias("ChurnPredictor", "production").version) == "1"
    # flowship's own rollback then goes back to 2, the version in Production before 1.
    assert rollback("ChurnPredictor").version == "2"
