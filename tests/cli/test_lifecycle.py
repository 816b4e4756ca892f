"""The lifecycle commands end to end, in-process: exit codes, exact messages, output."""

import json
import shutil
import time

import pytest

from tests._caches import reset_caches


@pytest.fixture(scope="module")
def _trained():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from flowship.quickstart.data import FEATURES, churn_frame

    data = churn_frame(500, seed=3)
    X, y = data[list(FEATURES)], data["churned"]
    weak = LogisticRegression(max_iter=300).fit(
        X[["age"]].assign(**{c: 0 for c in FEATURES[1:]})[list(FEATURES)], y
    )
    strong = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y)
    return data, weak, strong


@pytest.fixture(scope="module")
def _home_template(tmp_path_factory, _trained):
    """ChurnPredictor v1 (weak) and v2 (strong) registered once; each test copies the
    databases (registering costs seconds, copying milliseconds)."""
    from flowship.quickstart.data import FEATURES
    from flowship.registry import register_estimator

    data, weak, strong = _trained
    home = tmp_path_factory.mktemp("cli-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(home))
        mp.delenv("FLOWSHIP_DATABASE_URL", raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        reset_caches()
        example = data[list(FEATURES)].head()
        register_estimator("ChurnPredictor", weak, example, metrics={"auc": 0.6})
        register_estimator("ChurnPredictor", strong, example, metrics={"auc": 0.8})
        reset_caches()
    reset_caches()
    return home


@pytest.fixture
def churn(flowship_home, _home_template, _trained, tmp_path, monkeypatch):
    """ChurnPredictor v1 (weak) and v2 (strong), evaluation data, and a project dir."""
    # Rich wraps tables at the width it found at import (80 when not a terminal).
    from rich.console import Console

    wide = Console(width=250, highlight=False, soft_wrap=True)
    monkeypatch.setattr("flowship.cli._render.out", wide)
    flowship_home.mkdir(parents=True, exist_ok=True)
    for db_file in ("mlflow.db", "flowship.db"):
        shutil.copy(_home_template / db_file, flowship_home / db_file)
    reset_caches()
    project = tmp_path / "project"
    project.mkdir()
    _trained[0].tail(200).to_parquet(project / "eval.parquet")
    monkeypatch.chdir(project)
    return project


def _ok(result):
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _fails(result, code, message):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: ")
    return result


def _stages(cli):
    return {
        v["version"]: v["stage"]
        for v in json.loads(_ok(cli("versions", "ChurnPredictor", "--json")).stdout)
    }


def test_models_and_versions(cli, churn):
    out = _ok(cli("versions", "ChurnPredictor")).stdout
    assert "auc=0.6" in out and "auc=0.8" in out
    [model] = json.loads(_ok(cli("models", "--json")).stdout)
    assert (model["name"], model["versions"], model["production"]) == ("ChurnPredictor", 2, None)
    assert "ChurnPredictor" in _ok(cli("models")).stdout
    [v1, _v2] = json.loads(_ok(cli("versions", "ChurnPredictor", "--json")).stdout)
    assert set(v1) >= {
        "name",
        "version",
        "stage",
        "aliases",
        "created_at",
        "run_id",
        "source",
        "metrics",
    }


def test_promote_rollback_history_round_trip(cli, churn):
    _ok(cli("promote", "ChurnPredictor", "1", "--to", "staging"))
    r = _ok(cli("promote", "ChurnPredictor", "1", "--to", "production"))
    assert "Promoted ChurnPredictor version 1: Staging -> Production." in r.stderr
    r = _ok(cli("promote", "ChurnPredictor", "2", "--to", "production", "--expect-current", "1"))
    assert "version 1 moved to Archived" in r.stderr
    r = _ok(cli("rollback", "ChurnPredictor", "--reason", "latency regression"))
    assert (
        "Rolled back ChurnPredictor version 1: Archived -> Production; version 2 moved to Archived."
        in r.stderr
    )
    assert _stages(cli) == {"1": "Production", "2": "Archived"}

    table = _ok(cli("history", "ChurnPredictor")).stdout
    assert "latency regression" in table and "rollback" in table
    events = json.loads(_ok(cli("history", "ChurnPredictor", "--json")).stdout)
    assert [(e["version"], e["to_stage"], e["action"]) for e in events] == [
        ("1", "Staging", "promote"),
        ("1", "Production", "promote"),
        ("2", "Production", "promote"),
        ("1", "Archived", "promote"),
        ("1", "Production", "rollback"),
        ("2", "Archived", "rollback"),
    ]
    at = events[2]["at"]
    answer = json.loads(_ok(cli("history", "ChurnPredictor", "--at", at, "--json")).stdout)
    assert answer["version"] == "2"
    r = _ok(cli("history", "ChurnPredictor", "--at", "2000-01-01"))
    assert (
        "No version of ChurnPredictor was in Production at 2000-01-01T00:00:00+00:00." in r.stdout
    )


def test_failed_gate_prints_table_and_exits_1(cli, churn):
    r = _fails(
        cli(
            "promote", "ChurnPredictor", "1", "--to", "production",
            "--gate", "auc>=0.95", "--require-signature",
            "--eval-data", "eval.parquet", "--target", "churned",
        ),
        1,
        "failed 1 of 2 gate(s) for Production: auc >= 0.95. Nothing was changed.",
    )  # fmt: skip
    assert "FAIL" in r.stdout and "auc >= 0.95" in r.stdout and "0.95" in r.stdout
    assert "bypass with --force --reason" in r.stderr
    assert _stages(cli) == {"1": "None", "2": "None"}

    r = _ok(
        cli(
            "promote", "ChurnPredictor", "1", "--to", "production", "--gate", "auc>=0.95",
            "--eval-data", "eval.parquet", "--target", "churned",
            "--force", "--reason", "hotfix approved by ops",
        )
    )  # fmt: skip
    assert "forced: gates bypassed" in r.stderr
    [event] = json.loads(_ok(cli("history", "ChurnPredictor", "--json")).stdout)
    assert event["forced"] is True and event["reason"] == "hotfix approved by ops"


def test_gates_from_flowship_toml(cli, churn):
    (churn / "flowship.toml").write_text(
        '[models.ChurnPredictor]\nevaluation_data = "eval.parquet"\ntarget = "churned"\n'
        "[models.ChurnPredictor.production]\nmetrics = { auc = 0.7 }\n"
        "no_regression = { auc = 0.0 }\n"
    )
    _fails(cli("promote", "ChurnPredictor", "1", "--to", "production"), 1, "auc >= 0.7")
    r = _ok(cli("promote", "ChurnPredictor", "2", "--to", "production", "--json"))
    result = json.loads(r.stdout)
    assert result["promoted"] is True
    assert [g["name"] for g in result["gates"]] == ["auc >= 0.7", "auc no regression"]


P1 = "promote ChurnPredictor 1 --to"
BAD_INPUT = [
    ("versions Nope", "Model 'Nope' is not registered."),
    ("promote Nope 1 --to staging", "Model 'Nope' is not registered."),
    ("promote ChurnPredictor 9 --to staging", "has no version 9."),
    ("promote ChurnPredictor abc --to staging", "has no version abc."),
    (f"{P1} prod", "Unknown stage 'prod'."),
    (f"{P1} none", "is already in None."),
    (f"{P1} staging --force", "--force needs a reason"),
    (f"{P1} staging --reason {'x' * 5000}", "limit is 2000"),
    (f"{P1} production --expect-current 2", "not 2 as --expect-current said"),
    (f"{P1} staging --gate auc=1", "Cannot read gate 'auc=1'"),
    (f"{P1} staging --gate auc>=0.5", "need evaluation data and a target column"),
    (f"{P1} staging --confirm vibes", "Unknown checklist item 'vibes'"),
    (f"{P1} archived --gate auc>=0.5", "Gates guard only staging and production"),
    (f"{P1} staging --config nope.toml", "nope.toml: no such file."),
    ("promote ../etc/passwd 1 --to staging", "Invalid model name"),
    ("rollback ChurnPredictor", "has no version in Production, so there is nothing to roll back."),
    ("history ChurnPredictor --at yesterday", "Cannot read the time 'yesterday'."),
    ("history ChurnPredictor --at 2026-01-01 --stage live", "Unknown stage 'live'."),
    ("register /definitely/not/here --name X", "is not a directory"),
    ("register runs:/nope/model --name X", "Cannot register 'runs:/nope/model'"),
    ("register . --name X --tag novalue", "Cannot read tag 'novalue'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[a[:40] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(cli, churn, args, message):
    _fails(cli(*args.split()), 2, message)
    assert [m["name"] for m in json.loads(_ok(cli("models", "--json")).stdout)] == [
        "ChurnPredictor"
    ]
    assert _stages(cli) == {"1": "None", "2": "None"}
    assert json.loads(_ok(cli("history", "ChurnPredictor", "--json")).stdout) == []


def test_nothing_to_roll_back_to(cli, churn):
    _ok(cli("promote", "ChurnPredictor", "1", "--to", "production"))
    _fails(cli("rollback", "ChurnPredictor"), 2, "there is nothing to roll back to.")
    _fails(cli("rollback", "ChurnPredictor", "--to", "7"), 2, "has no version 7.")


def test_illegal_transition_from_archived(cli, churn):
    _ok(cli("promote", "ChurnPredictor", "1", "--to", "archived"))
    r = _fails(
        cli("promote", "ChurnPredictor", "1", "--to", "production"),
        2,
        "cannot move from Archived to Production",
    )
    assert "flowship rollback ChurnPredictor --to 1" in r.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.ChurnPredictor\n", "is not valid TOML"),
        (
            "[models.ChurnPredictor.production]\nmetrics = { speed = 1 }\n",
            "production.metrics': Unknown metric 'speed'",
        ),
        ("\xff\xfe", "is not UTF-8 text"),
    ],
)  # fmt: skip
def test_malformed_flowship_toml(cli, churn, text, message):
    (churn / "flowship.toml").write_bytes(text.encode("latin-1"))
    r = _fails(cli("promote", "ChurnPredictor", "1", "--to", "production"), 2, message)
    assert "flowship.toml" in r.stderr
    assert _stages(cli)["1"] == "None"


def test_evaluation_data_missing_a_feature_is_exit_2(cli, churn):
    import pandas as pd

    frame = pd.read_parquet(churn / "eval.parquet").drop(columns=["recency_days"])
    frame.to_csv(churn / "eval.csv", index=False)
    r = _fails(
        cli(
            "promote", "ChurnPredictor", "1", "--to", "staging", "--gate", "auc>=0.5",
            "--eval-data", "eval.csv", "--target", "churned",
        ),
        2,
        "'recency_days'",
    )  # fmt: skip
    assert "Add the missing feature column(s) to the evaluation data" in r.stderr
    assert _stages(cli)["1"] == "None"


def test_register_local_directory(cli, churn, _trained, tmp_path):
    import mlflow

    from flowship.registry.versions import skops_trusted_types

    _data, _weak, strong = _trained
    path = tmp_path / "exported"
    mlflow.sklearn.save_model(strong, str(path), skops_trusted_types=skops_trusted_types(strong))
    r = _ok(
        cli("register", str(path), "--name", "ChurnPredictor", "--tag", "team=growth", "--json")
    )
    info = json.loads(r.stdout)
    assert (info["version"], info["tags"]["team"]) == ("3", "growth")
    r = _ok(cli("register", str(path), "-n", "ChurnPredictor"))
    assert "Registered ChurnPredictor version 4 (stage None)" in r.stderr


def test_unreachable_tracking_uri_fails_fast(cli, monkeypatch):
    from flowship.config import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    get_settings.cache_clear()
    for args in (
        ["models"],
        ["versions", "ChurnPredictor"],
        ["promote", "ChurnPredictor", "1", "--to", "staging"],
    ):
        started = time.monotonic()
        _fails(cli(*args), 2, "Cannot reach the MLflow tracking server at http://127.0.0.1:9.")
        assert time.monotonic() - started < 15


def test_oversized_inputs(cli, churn):
    (churn / "flowship.toml").write_text("# padding\n" * 200_000)
    _fails(cli("promote", "ChurnPredictor", "1", "--to", "staging"), 2, "is larger than 1 MB")
    (churn / "flowship.toml").unlink()
    r = _fails(
        cli(
            "register", "models:/ChurnPredictor/1", "--name", "Copy", "--tag", "k=" + "v" * 200_000
        ),
        2,
        "Cannot register 'models:/ChurnPredictor/1'",
    )
    assert len(r.stderr.splitlines()) == 2
    # MLflow refused the version: the registered model it had created is gone again.
    names = [m["name"] for m in json.loads(_ok(cli("models", "--json")).stdout)]
    assert names == ["ChurnPredictor"]


def test_unreachable_state_database(cli, churn, monkeypatch):
    from flowship.config import get_settings

    monkeypatch.setenv("FLOWSHIP_DATABASE_URL", "postgresql+psycopg://127.0.0.1:9/nope")
    get_settings.cache_clear()
    started = time.monotonic()
    r = _fails(
        cli("promote", "ChurnPredictor", "1", "--to", "staging"),
        2,
        "Cannot open flowship's database",
    )
    assert time.monotonic() - started < 15
    assert "FLOWSHIP_DATABASE_URL" in r.stderr


def test_piped_tables_keep_every_value_whole(churn, cli):
    """`flowship history NAME | grep Production` finds it: a real pipe to a real grep,
    full values one row per line, tab-separated."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    reason = "approved by the risk board after the Q3 review, ticket RISK-4211; " * 3
    _ok(cli("promote", "ChurnPredictor", "1", "--to", "production", "--reason", reason.strip()))
    flowship = Path(sys.executable).with_name("flowship")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "60"}
    piped = subprocess.run(
        f"'{flowship}' history ChurnPredictor | grep Production",
        shell=True, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr[-2000:]
    (line,) = piped.stdout.splitlines()
    cells = line.split("\t")
    assert "None -> Production" in cells and "…" not in line
    assert reason.strip() in cells  # the whole reason, not cut to the terminal width

    listed = subprocess.run(
        [str(flowship), "versions", "ChurnPredictor"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t")[:2] == ["version", "stage"]
    assert [r.split("\t")[:2] for r in rows] == [["1", "Production"], ["2", "None"]]
