import warnings

import pytest


def _stages():
    from flowship.registry import list_versions

    return {v.version: v.stage for v in list_versions("ChurnPredictor")}


@pytest.mark.slow  # two full tours, including a real server subprocess
def test_quickstart_runs_end_to_end_and_again_in_the_same_home(cli, flowship_home, monkeypatch):
    from rich.console import Console

    # Rich wraps tables at the width it found at import (80 when not a terminal).
    monkeypatch.setattr(
        "flowship.cli._render.out",
        Console(width=200, soft_wrap=True, force_terminal=True, color_system=None),
    )
    first = cli("quickstart")
    assert first.exit_code == 0, first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    for sentence in (
        "registered it as ChurnPredictor version 1",
        "the promotion is refused and nothing changes",
        "Rolled back: version 1",
        "History of ChurnPredictor",
        "$ flowship deployment apply churn-ab.deployment.yaml",
        "Read back from the prediction log",
        "flowship traffic churn-ab --undo",
    ):
        assert sentence in first.stdout
    assert _stages() == {"1": "Production", "2": "Archived"}
    assert (flowship_home / "quickstart" / "flowship.toml").is_file()
    from deltalake import DeltaTable

    logged = DeltaTable(str(flowship_home / "tables" / "prediction_log")).to_pandas()
    assert len(logged) == 60 and set(logged.variant) == {"champion", "challenger"}
    assert set(logged.model_version) == {"1", "2"}  # 90/10 over 60 customers: both answer

    import mlflow
    from mlflow import MlflowClient

    # The seed's ways of finding the Production model agree.
    by_stage = mlflow.models.get_model_info("models:/ChurnPredictor/Production")
    by_alias = mlflow.models.get_model_info("models:/ChurnPredictor@production")
    assert by_stage.model_uuid == by_alias.model_uuid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [prod] = MlflowClient().get_latest_versions("ChurnPredictor", stages=["Production"])
    assert str(prod.version) == "1"

    second = cli("quickstart")
    assert second.exit_code == 0, second.stderr
    assert "version 3" in second.stdout and "Version 1 (from an earlier run) was archived" in (
        second.stdout
    )
    assert _stages() == {"1": "Archived", "2": "Archived", "3": "Production", "4": "Archived"}


def test_quickstart_refuses_a_bad_model_name(cli):
    result = cli("quickstart", "--model", "a/b")
    assert result.exit_code == 2
    assert "Invalid model name 'a/b'" in result.stderr


def test_steps_can_be_added_with_one_line(flowship_home):
    """Another area's step: a plain function with ``say`` gets called with kwargs."""
    import sys
    import types

    from flowship.quickstart import Step, Tour, run

    calls = []
    module = types.ModuleType("fake_step_module")
    module.plain = lambda *, say, greeting: (calls.append(greeting), say(greeting))
    module.full = lambda tour, n=0: calls.append((tour.model, n))
    sys.modules["fake_step_module"] = module
    said = []
    tour = Tour(home=flowship_home, say=said.append)
    timings = run(
        tour,
        [Step("plain", "fake_step_module:plain", {"greeting": "hi"}),
         Step("full", "fake_step_module:full", {"n": 2})],
    )  # fmt: skip
    assert calls == ["hi", ("ChurnPredictor", 2)]
    assert said == ["hi"]
    assert [title for title, _ in timings] == ["plain", "full"]
