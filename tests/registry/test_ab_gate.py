"""`flowship promote ... --gate ab:auc`: the live A/B test as a promotion gate."""

from __future__ import annotations

import json

import pytest

from tests.monitoring.experiment_data import experiment, write_log

TOML = """
[ab.ChurnPredictor]
deployment = "churn"
actuals = "actuals.parquet"
id = "customer_id"
label = "churned"
log = "log"
weights = {{ champion = 50, challenger = 50 }}
{extra}
"""


@pytest.fixture
def setup(cli, register_two, tmp_path, monkeypatch):
    """v1 in Production as the champion; v2 (or another version) as the challenger."""
    register_two()
    assert cli("promote", "ChurnPredictor", "1", "--to", "production").exit_code == 0
    monkeypatch.chdir(tmp_path)

    def run(quality: dict[str, float], *, challenger_version: str = "2", extra: str = ""):
        log, actuals = experiment(
            keys=6000,
            seed=1,
            quality=quality,
            versions={"champion": "1", "challenger": challenger_version},
        )
        write_log(log, tmp_path / "log")
        actuals.to_parquet(tmp_path / "actuals.parquet")
        (tmp_path / "flowship.toml").write_text(TOML.format(extra=extra))

    return run


def test_a_better_challenger_is_promoted_and_the_gate_recorded(cli, setup):
    setup({"champion": 0.5, "challenger": 2.0})
    result = cli(
        "promote", "ChurnPredictor", "2", "--to", "production", "--gate", "ab:auc", "--json"
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    (gate,) = body["gates"]
    assert gate["name"] == "ab:auc" and gate["passed"] and gate["value"].startswith("better (+")
    assert "challenger is better than champion" in gate["detail"]
    history = json.loads(cli("history", "ChurnPredictor", "--json").stdout)
    assert any(g["name"] == "ab:auc" for e in history for g in (e.get("gates") or []))


def test_a_worse_challenger_is_refused_and_nothing_changes(cli, setup):
    setup({"champion": 1.0, "challenger": 0.25})
    result = cli("promote", "ChurnPredictor", "2", "--to", "production", "--gate", "ab:auc")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "ab:auc" in result.stdout
    assert "failed 1 of 1 gate(s)" in result.stderr
    versions = json.loads(cli("versions", "ChurnPredictor", "--json").stdout)
    assert {v["version"]: v["stage"] for v in versions}["1"] == "Production"


def test_the_experiment_must_have_served_the_version_being_promoted(cli, setup):
    setup({"champion": 0.5, "challenger": 2.0}, challenger_version="7")
    args = ("promote", "ChurnPredictor", "2", "--to", "production", "--gate", "ab:auc", "--json")
    result = cli(*args)
    assert result.exit_code == 1
    (gate,) = json.loads(result.stdout)["gates"]
    assert not gate["passed"] and gate["detail"] == "variant challenger served version(s) 7, not 2"


def test_ab_gate_needs_the_experiment_in_flowship_toml(cli, register_two, tmp_path, monkeypatch):
    register_two()
    monkeypatch.chdir(tmp_path)
    result = cli("promote", "ChurnPredictor", "2", "--to", "production", "--gate", "ab:auc")
    assert result.exit_code == 2
    assert "error: The A/B gate for ChurnPredictor needs to know where the experiment is." in (
        result.stderr
    )
    assert "[ab.ChurnPredictor]" in result.stderr


@pytest.mark.parametrize(
    ("gate", "extra", "message"),
    [
        ("ab:f1", "", "unknown A/B metric 'f1'"),
        ("ab:auc", "alpha = 2", "ab.ChurnPredictor.alpha"),
        ("ab:auc", "colour = 'red'", "ab.ChurnPredictor.colour"),
    ],
)
def test_bad_ab_gates_are_exit_2(cli, setup, gate, extra, message):
    setup({}, extra=extra)
    result = cli("promote", "ChurnPredictor", "2", "--to", "production", "--gate", gate)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
