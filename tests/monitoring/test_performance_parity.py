"""Out-of-core performance gives the in-memory implementation's numbers.

``data/performance_golden.json`` holds what the pandas implementation (commit dfb9a56)
reported for each case of ``perf_cases.CASES``."""

from __future__ import annotations

import json

import pytest

from flowship.monitoring.performance import evaluate_performance
from tests.monitoring.perf_cases import CASES, GOLDEN


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def same_metrics(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        if value is None:
            assert ours[name] is None, name
        else:
            assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def assert_same_report(ours: dict, theirs: dict) -> None:
    for key in ("status", "task", "n_predictions", "n_with_actuals", "coverage", "thresholds"):
        assert ours[key] == theirs[key], key
    same_metrics(ours["metrics"], theirs["metrics"])
    assert [v["metric"] for v in ours["violations"]] == [v["metric"] for v in theirs["violations"]]
    assert len(ours["windows"]) == len(theirs["windows"])
    for mine, old in zip(ours["windows"], theirs["windows"], strict=True):
        assert (mine["start"], mine["end"], mine["n"]) == (old["start"], old["end"], old["n"])
        same_metrics(mine["metrics"], old["metrics"])
    assert [(s["segment"], s["n"]) for s in ours["segments"]] == [
        (s["segment"], s["n"]) for s in theirs["segments"]
    ]
    for mine, old in zip(ours["segments"], theirs["segments"], strict=True):
        same_metrics(mine["metrics"], old["metrics"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_core_report_equals_the_in_memory_one(case, golden):
    make, params = CASES[case]
    predictions, actuals = make()
    report = json.loads(
        json.dumps(evaluate_performance(predictions, actuals, **params).to_dict(), default=str)
    )
    assert_same_report(report, golden[case])


@pytest.mark.parametrize("case", ["scored_windows_segments", "regression", "text_labels"])
def test_same_numbers_from_parquet_files(case, golden, tmp_path):
    make, params = CASES[case]
    predictions, actuals = make()
    predictions.to_parquet(tmp_path / "p.parquet", index=False)
    actuals.to_parquet(tmp_path / "a.parquet", index=False)
    report = evaluate_performance(
        str(tmp_path / "p.parquet"), str(tmp_path / "a.parquet"), **params
    ).to_dict()
    assert_same_report(json.loads(json.dumps(report, default=str)), golden[case])
