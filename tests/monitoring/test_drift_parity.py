"""The streaming drift path gives the in-memory path's reports on the existing cases.

``data/drift_golden.json`` holds what the in-memory implementation (pandas frames read
whole, commit dfb9a56) reported for every case of ``drift_cases.CASES``; each case is
run here through today's streaming code, from DataFrames and from Parquet files."""

from __future__ import annotations

import json
import math

import pytest

from flowship.monitoring.drift import check_drift
from tests.monitoring.drift_cases import CASES, GOLDEN

NUMBERS = (
    "statistic",
    "p_value",
    "p_value_adjusted",
    "psi",
    "wasserstein_normalized",
    "jensen_shannon",
    "missing_rate_reference",
    "missing_rate_current",
)
SAME = ("name", "kind", "role", "status", "drifted", "test", "reason", "dof", "value_set")


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def assert_same_report(ours: dict, theirs: dict) -> None:
    for key in ("status", "dataset_drift", "drifted_columns", "n_reference", "n_current"):
        assert ours[key] == theirs[key], key
    assert ours["skipped_columns"] == theirs["skipped_columns"]
    assert [c["name"] for c in ours["columns"]] == [c["name"] for c in theirs["columns"]]
    for mine, old in zip(ours["columns"], theirs["columns"], strict=True):
        for key in SAME:
            assert mine[key] == old[key], (mine["name"], key)
        for key in NUMBERS:
            a, b = mine[key], old[key]
            if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
                assert a == b, (mine["name"], key)
            else:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (mine["name"], key)
        if old["bins"] is None:
            assert mine["bins"] is None
            continue
        for key in ("labels", "reference_counts", "current_counts", "unseen_values"):
            assert mine["bins"].get(key) == old["bins"].get(key), (mine["name"], key)
        if "edges" in old["bins"]:
            assert mine["bins"]["edges"] == pytest.approx(old["bins"]["edges"], rel=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_streaming_report_equals_the_in_memory_one(case, golden):
    make, params = CASES[case]
    reference, current = make()
    report = check_drift(reference, current, **params).to_dict()
    assert_same_report(report, golden[case])


@pytest.mark.parametrize("case", ["real_shifts", "missing_jump", "codes", "ks_seed"])
def test_same_report_from_parquet_files(case, golden, tmp_path):
    make, params = CASES[case]
    reference, current = make()
    reference.to_parquet(tmp_path / "b.parquet", index=False)
    current.to_parquet(tmp_path / "c.parquet", index=False)
    report = check_drift(str(tmp_path / "b.parquet"), str(tmp_path / "c.parquet"), **params)
    assert_same_report(report.to_dict(), golden[case])
