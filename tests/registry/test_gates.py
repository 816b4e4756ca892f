import pytest

from flowship.errors import ConfigError, GateFailed, InvalidInput, UsageError
from flowship.registry import NoRegression, history, list_versions, promote
from flowship.registry.gate_config import parse_no_regression, parse_threshold
from flowship.registry.gates import Subject

TOML = """
[models.ChurnPredictor]
evaluation_data = "eval.parquet"
target = "churned"

[models.ChurnPredictor.staging]
signature = true
metrics = {{ auc = {staging_auc} }}
checklist = ["input_schema_documented", "output_format_defined"]

[models.ChurnPredictor.production]
metrics = {{ auc = 0.6, log_loss = 0.7 }}
no_regression = {{ auc = {{ tolerance = 0.01 }} }}
checklist = ["model_performance_validated"]

[serving.something_else]
owned = "by another part of flowship"
"""


@pytest.fixture
def project(tmp_path, churn_data, monkeypatch):
    """A working directory with flowship.toml and its evaluation data."""
    churn_data.tail(300).to_parquet(tmp_path / "eval.parquet")

    def write(staging_auc=0.55):
        (tmp_path / "flowship.toml").write_text(TOML.format(staging_auc=staging_auc))
        return tmp_path

    monkeypatch.chdir(tmp_path)
    return write


def _stages():
    return {v.version: v.stage for v in list_versions("ChurnPredictor")}


def test_gates_from_flowship_toml_pass_and_are_recorded(register_two, project):
    project()
    register_two()
    t = promote("ChurnPredictor", 1, "staging")
    assert [g.name for g in t.gates] == [
        "signature present",
        "auc >= 0.55",
        "checklist: input_schema_documented",
        "checklist: output_format_defined",
    ]
    assert all(g.passed for g in t.gates)
    auc = t.gates[1].value
    assert 0.55 < auc < 0.9
    promote("ChurnPredictor", 1, "production")
    t = promote("ChurnPredictor", 2, "production")
    by_name = {g.name: g for g in t.gates}
    assert by_name["auc no regression"].passed
    assert "Production is version 1" in by_name["auc no regression"].detail
    assert by_name["checklist: model_performance_validated"].passed
    stored = history("ChurnPredictor")[-2].gates
    assert {g["name"] for g in stored} == set(by_name)


def test_failed_gate_refuses_and_changes_nothing(register_two, project):
    project(staging_auc=0.99)
    register_two()
    with pytest.raises(GateFailed, match="failed 1 of 4 gate") as failed:
        promote("ChurnPredictor", 2, "staging")
    [bad] = [r for r in failed.value.results if not r.passed]
    assert (bad.name, bad.limit) == ("auc >= 0.99", 0.99)
    assert bad.value < 0.99
    assert _stages() == {"1": "None", "2": "None"}
    assert history("ChurnPredictor") == []


def test_no_regression_refuses_a_worse_model(register_two, project):
    project()
    register_two()
    promote("ChurnPredictor", 2, "production", force=True, reason="first deploy")
    with pytest.raises(GateFailed, match="auc no regression"):
        promote("ChurnPredictor", 1, "production")
    assert _stages()["2"] == "Production"


def test_force_bypasses_and_is_recorded(register_two, project):
    project(staging_auc=0.99)
    register_two()
    t = promote("ChurnPredictor", 1, "staging", force=True, reason="demo for the team")
    assert t.forced and not all(g.passed for g in t.gates)
    [event] = history("ChurnPredictor")
    assert (event.forced, event.reason) == (True, "demo for the team")
    assert any(not g["passed"] for g in event.gates)


def test_cli_style_gates_without_a_file(register_two, tmp_path, churn_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    churn_data.tail(200).to_csv(tmp_path / "eval.csv", index=False)
    register_two()
    t = promote(
        "ChurnPredictor",
        2,
        "production",
        gates=["auc>=0.7", "accuracy>=0.6", "f1>=0.1", "log_loss<=0.7"],
        no_regression=["auc:0.02"],
        require_signature=True,
        checklist=["rollback_plan_ready", "stakeholders_notified"],
        confirm=["stakeholders_notified"],
        evaluation_data=str(tmp_path / "eval.csv"),
        target="churned",
        force=True,
        reason="no Production yet, so no rollback plan",
    )
    by_name = {g.name: g for g in t.gates}
    assert by_name["checklist: stakeholders_notified"].value == "confirmed"
    assert not by_name["checklist: rollback_plan_ready"].passed  # nothing to roll back to yet
    assert by_name["auc no regression"].detail == "no version in Production to compare"
    assert all(g.passed for n, g in by_name.items() if n != "checklist: rollback_plan_ready")


def test_checklist_confirmed_by_a_version_tag(register_two, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    register_two()
    with pytest.raises(GateFailed, match="checklist: monitoring_configured"):
        promote("ChurnPredictor", 1, "staging", checklist=["monitoring_configured"])
    MlflowClient().set_model_version_tag(
        "ChurnPredictor", "1", "checklist.monitoring_configured", "done"
    )
    promote("ChurnPredictor", 1, "staging", checklist=["Monitoring configured"])


def test_signature_gate_refuses_a_version_without_signature(tmp_path, strong_model, monkeypatch):
    import mlflow

    from flowship.registry import register
    from flowship.registry.versions import skops_trusted_types

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "nosig"
    mlflow.sklearn.save_model(
        strong_model, str(path), skops_trusted_types=skops_trusted_types(strong_model)
    )
    register(str(path), "Bare")
    with pytest.raises(GateFailed, match="signature present"):
        promote("Bare", 1, "staging", require_signature=True)


@pytest.mark.parametrize(
    ("mutate", "error", "needle"),
    [
        (lambda d: d.drop(columns=["tenure_months"]), InvalidInput, "'tenure_months'"),
        (lambda d: d.drop(columns=["churned"]), InvalidInput, "no target column 'churned'"),
        (lambda d: d.head(0), InvalidInput, "has no rows"),
        (lambda d: d.assign(age="old"), InvalidInput, "does not fit"),
    ],
)
def test_bad_evaluation_data_is_a_usage_error_not_a_gate_failure(
    register_two, project, churn_data, mutate, error, needle
):
    folder = project()
    mutate(churn_data.tail(50)).to_parquet(folder / "eval.parquet")
    register_two()
    with pytest.raises(error, match=needle) as caught:
        promote("ChurnPredictor", 1, "staging")
    assert not isinstance(caught.value, GateFailed)
    assert history("ChurnPredictor") == []


def test_missing_unreadable_and_odd_evaluation_files(register_two, project):
    folder = project()
    register_two()
    (folder / "eval.parquet").unlink()
    with pytest.raises(UsageError, match="eval.parquet does not exist"):
        promote("ChurnPredictor", 1, "staging")
    (folder / "eval.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(InvalidInput, match="Cannot read evaluation data"):
        promote("ChurnPredictor", 1, "staging")
    (folder / "eval.json").write_text("{}")
    with pytest.raises(UsageError, match="neither Parquet nor CSV"):
        promote("ChurnPredictor", 1, "staging", evaluation_data=str(folder / "eval.json"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[models.ChurnPredictor\n", "is not valid TOML"),
        ("[models.ChurnPredictor.staging]\nmetrics = { aucc = 0.7 }\n", "Unknown metric 'aucc'"),
        ("[models.ChurnPredictor.staging]\nchecklist = ['coffee']\n", "Unknown checklist item"),
        (
            "[models.ChurnPredictor.staging]\nsignatur = true\n",
            "unknown field 'models.ChurnPredictor.staging.signatur'",
        ),
        (
            "[models.ChurnPredictor.production]\nno_regression = { auc = { tolerance = -1 } }\n",
            "tolerance': Input should be greater than or equal to 0",
        ),
        ("[models.ChurnPredictor.staging]\nmetrics = { auc = 0.7 }\n", "need evaluation data"),
        ("models = 3\n", "field 'models': Input should be a valid dictionary"),
    ],
)
def test_malformed_flowship_toml(tmp_path, monkeypatch, text, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flowship.toml").write_text(text)
    # The file is read before MLflow is touched: nothing registered is needed.
    with pytest.raises(UsageError, match=needle) as caught:
        promote("ChurnPredictor", 1, "staging")
    if "evaluation data" not in needle:
        assert isinstance(caught.value, ConfigError)
        assert str(tmp_path / "flowship.toml") in caught.value.message


def test_explicit_config_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        promote("ChurnPredictor", 1, "staging", config=str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("auc>0.7", "Cannot read gate"),
        ("auc>=abc", "Cannot read gate"),
        ("auc>=1e999", "is not a number"),
        ("log_loss>=0.5", "points the wrong way"),
        ("speed>=3", "Unknown metric 'speed'"),
        ("", "Cannot read gate"),
    ],
)
def test_bad_command_line_gates(text, needle):
    with pytest.raises(UsageError, match=needle):
        parse_threshold(text)


def test_no_regression_parsing_and_mlflow_semantics():
    assert parse_no_regression("auc:0.01") == NoRegression("auc", tolerance=0.01)
    with pytest.raises(UsageError, match="negative"):
        parse_no_regression("auc:-1")
    # MLflow MetricThreshold: greater is better -> candidate >= baseline + change.
    assert NoRegression("auc", min_absolute_change=0.05).limit(0.8) == pytest.approx(0.85)
    assert NoRegression("auc", min_relative_change=0.1).limit(0.8) == pytest.approx(0.88)
    assert NoRegression("rmse", min_relative_change=0.1).limit(-2.0) == pytest.approx(-2.2)
    assert NoRegression("rmse", tolerance=0.5).limit(3.0) == pytest.approx(3.5)
    assert NoRegression("r2", min_relative_change=0.5).limit(0.0) == pytest.approx(1e-10)
    # Several conditions: the strictest decides.
    both = NoRegression("auc", tolerance=0.01, min_absolute_change=0.02)
    assert both.limit(0.8) == pytest.approx(0.82)

    def subject(version, value):
        return Subject("M", version, True, True, score=lambda metric: value)

    gate = NoRegression("log_loss", tolerance=0.05)
    assert gate.evaluate(subject("2", 0.54), subject("1", 0.5)).passed
    assert not gate.evaluate(subject("2", 0.56), subject("1", 0.5)).passed


def test_regression_metrics_and_lower_is_better_no_regression(tmp_path, churn_data, monkeypatch):
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    from flowship.registry import register_estimator

    monkeypatch.chdir(tmp_path)
    features = ["frequency", "tenure_months"]
    X, y = churn_data[features], churn_data["monetary_total"]
    churn_data[[*features, "monetary_total"]].tail(200).to_parquet(tmp_path / "spend.parquet")
    register_estimator("Spend", DummyRegressor().fit(X, y), X.head())
    register_estimator("Spend", LinearRegression().fit(X, y), X.head())
    (tmp_path / "flowship.toml").write_text(
        '[models.Spend]\nevaluation_data = "spend.parquet"\ntarget = "monetary_total"\n'
        "[models.Spend.production]\nmetrics = { r2 = 0.3, rmse = 1000, mae = 1000 }\n"
        "no_regression = { rmse = { min_relative_change = 0.1 } }\n"
    )
    with pytest.raises(GateFailed, match="r2 >= 0.3"):
        promote("Spend", 1, "production")
    promote("Spend", 1, "production", force=True, reason="baseline")
    t = promote("Spend", 2, "production")
    by_name = {g.name: g for g in t.gates}
    assert by_name["r2 >= 0.3"].value > 0.3
    rmse = by_name["rmse no regression"]
    # Lower is better: the candidate must be at least 10% below the baseline's RMSE.
    assert rmse.passed and rmse.value <= rmse.limit
    with pytest.raises(UsageError, match="Cannot compute auc, log_loss for Spend version 1"):
        promote("Spend", 1, "staging", gates=["auc>=0.5"])


def test_oversized_evaluation_data_is_refused_before_reading(register_two, project, monkeypatch):
    from flowship.registry import evaluation

    project()
    register_two()
    monkeypatch.setattr(evaluation, "MAX_BYTES", 1000)
    with pytest.raises(InvalidInput, match="more than 2 GiB"):
        promote("ChurnPredictor", 1, "staging")
    monkeypatch.setattr(evaluation, "MAX_BYTES", 2 * 1024**3)
    monkeypatch.setattr(evaluation, "MAX_ROWS", 10)
    with pytest.raises(InvalidInput, match="300 rows, more than 10"):
        promote("ChurnPredictor", 1, "staging")
    assert history("ChurnPredictor") == []
