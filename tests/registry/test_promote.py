import warnings

import pytest

from flowship.errors import (
    ConcurrentChange,
    IllegalTransition,
    ModelNotFound,
    UsageError,
    VersionNotFound,
)
from flowship.registry import history, list_versions, promote, rollback


def _stages(name="ChurnPredictor"):
    return {v.version: v.stage for v in list_versions(name)}


def _mlflow_view(name="ChurnPredictor"):
    from mlflow import MlflowClient

    client = MlflowClient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prod = client.get_latest_versions(name, stages=["Production"])
    return {
        "alias": str(client.get_model_version_by_alias(name, "production").version),
        "native": [str(v.version) for v in prod],
    }


def test_promote_moves_aliases_tag_and_native_stage(register_two):
    import mlflow

    register_two()
    t = promote("ChurnPredictor", 1, "staging")
    assert (t.from_stage, t.to_stage, t.previous) == ("None", "Staging", None)
    promote("ChurnPredictor", "1", "Production")
    promote("ChurnPredictor", 2, "staging")
    assert _stages() == {"1": "Production", "2": "Staging"}
    assert _mlflow_view() == {"alias": "1", "native": ["1"]}

    t = promote("ChurnPredictor", 2, "production")
    assert t.previous == "1"
    assert _stages() == {"1": "Archived", "2": "Production"}
    assert _mlflow_view() == {"alias": "2", "native": ["2"]}
    versions = {v.version: v for v in list_versions("ChurnPredictor")}
    assert versions["2"].aliases == ["production"]
    assert versions["2"].tags["flowship.stage"] == "Production"
    # The seed's URIs resolve to the same version.
    by_alias = mlflow.models.get_model_info("models:/ChurnPredictor@production")
    by_stage = mlflow.models.get_model_info("models:/ChurnPredictor/Production")
    assert by_alias.model_uuid == by_stage.model_uuid

    steps = [(e.version, e.from_stage, e.to_stage, e.action) for e in history("ChurnPredictor")]
    assert steps == [
        ("1", "None", "Staging", "promote"),
        ("1", "Staging", "Production", "promote"),
        ("2", "None", "Staging", "promote"),
        ("2", "Staging", "Production", "promote"),
        ("1", "Production", "Archived", "promote"),
    ]
    assert all(e.actor == "tester" for e in history("ChurnPredictor"))


def test_no_archive_sends_previous_holder_back_to_none(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "production", archive_previous=False)
    assert _stages() == {"1": "None", "2": "Production"}


@pytest.mark.parametrize(
    ("setup", "version", "to", "needle"),
    [
        ([], 1, "none", "already in None"),
        ([(1, "production")], 1, "staging", "cannot move from Production to Staging"),
        ([(1, "archived")], 1, "production", "cannot move from Archived to Production"),
    ],
)
def test_illegal_transitions_change_nothing(register_two, setup, version, to, needle):
    register_two()
    for v, stage in setup:
        promote("ChurnPredictor", v, stage)
    before = (_stages(), len(history("ChurnPredictor")))
    with pytest.raises(IllegalTransition, match=needle):
        promote("ChurnPredictor", version, to)
    assert (_stages(), len(history("ChurnPredictor"))) == before


def test_unknown_things_are_refused(register_two):
    with pytest.raises(ModelNotFound):
        promote("Nope", 1, "staging")
    register_two()
    with pytest.raises(VersionNotFound, match="has no version 7"):
        promote("ChurnPredictor", 7, "staging")
    with pytest.raises(UsageError, match="Unknown stage 'prod'"):
        promote("ChurnPredictor", 1, "prod")
    with pytest.raises(VersionNotFound):
        promote("ChurnPredictor", "-1", "staging")
    assert history("ChurnPredictor") == []


def test_expect_current_is_compare_and_swap(register_two):
    register_two()
    promote("ChurnPredictor", 1, "production", expect_current="none")
    with pytest.raises(ConcurrentChange, match="Production of ChurnPredictor is version 1"):
        promote("ChurnPredictor", 2, "production", expect_current="none")
    with pytest.raises(ConcurrentChange, match="not 2"):
        promote("ChurnPredictor", 2, "production", expect_current=2)
    assert _stages()["1"] == "Production"
    promote("ChurnPredictor", 2, "production", expect_current=1)
    assert _stages()["2"] == "Production"


def test_force_needs_a_reason_and_reasons_are_bounded(register_two):
    register_two()
    with pytest.raises(UsageError, match="--force needs a reason"):
        promote("ChurnPredictor", 1, "staging", force=True)
    with pytest.raises(UsageError, match="limit is 2000"):
        promote("ChurnPredictor", 1, "staging", reason="x" * 2001)
    with pytest.raises(UsageError, match="control characters"):
        promote("ChurnPredictor", 1, "staging", reason="a\x1b[2Jb")
    assert history("ChurnPredictor") == []


def test_rollback_uses_history_not_newest_archived(register_two, churn_data, features):
    from flowship.registry import register_estimator

    v1, v2 = register_two()
    from sklearn.dummy import DummyClassifier

    dummy = DummyClassifier().fit(churn_data[features], churn_data["churned"])
    register_estimator("ChurnPredictor", dummy, churn_data[features].head())  # version 3
    promote("ChurnPredictor", 2, "production")
    promote("ChurnPredictor", 3, "production")  # 2 archived
    promote("ChurnPredictor", 1, "production")  # 3 archived: newest archived is 3
    t = rollback("ChurnPredictor", reason="v1 misbehaves")
    # Before version 1, Production held version 3.
    assert (t.version, t.previous) == ("3", "1")
    assert _stages() == {"1": "Archived", "2": "Archived", "3": "Production"}
    last = history("ChurnPredictor")[-2:]
    assert [(e.version, e.action, e.to_stage) for e in last] == [
        ("3", "rollback", "Production"),
        ("1", "rollback", "Archived"),
    ]
    assert last[0].reason == "v1 misbehaves"
    # Explicit target.
    rollback("ChurnPredictor", to=2)
    assert _stages()["2"] == "Production"


def test_rollback_with_nothing_to_go_back_to(register_two):
    register_two()
    with pytest.raises(IllegalTransition, match="no version in Production"):
        rollback("ChurnPredictor")
    promote("ChurnPredictor", 1, "production")
    with pytest.raises(IllegalTransition, match="nothing to roll back to"):
        rollback("ChurnPredictor")
    with pytest.raises(IllegalTransition, match="already in Production"):
        rollback("ChurnPredictor", to=1)
    with pytest.raises(VersionNotFound):
        rollback("ChurnPredictor", to=9)
    assert _stages() == {"1": "Production", "2": "None"}


def test_staging_holds_one_version(register_two):
    register_two()
    promote("ChurnPredictor", 1, "staging")
    t = promote("ChurnPredictor", 2, "staging")
    assert t.previous == "1"
    assert _stages() == {"1": "Archived", "2": "Staging"}
    from mlflow import MlflowClient

    aliases = MlflowClient().get_registered_model("ChurnPredictor").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"staging": "2"}
    # Staging -> Production takes the staging alias away.
    promote("ChurnPredictor", 2, "production")
    aliases = MlflowClient().get_registered_model("ChurnPredictor").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"production": "2"}


def test_expect_current_must_be_a_version_or_none(register_two):
    register_two()
    with pytest.raises(UsageError, match="--expect-current must be a version number or 'none'"):
        promote("ChurnPredictor", 1, "production", expect_current="latest")
    assert _stages()["1"] == "None"


def test_list_models_shows_stage_holders(register_two):
    from flowship.registry import list_models

    register_two()
    promote("ChurnPredictor", 1, "production")
    promote("ChurnPredictor", 2, "staging")
    [model] = list_models()
    assert (model.production, model.staging, model.latest_version) == ("1", "2", "2")
