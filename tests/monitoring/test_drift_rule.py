"""The default drift rule: quiet on big unshifted samples, loud on real shifts, honest
about too little data; and the KS method reproducing the seed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from flowship.errors import InvalidInput, UsageError
from flowship.monitoring.drift import METHODS, DefaultDrift, KSDrift, check_drift


def by_name(report):
    return {c.name: c for c in report.columns}


@pytest.mark.slow
def test_no_cry_wolf_at_a_million_rows_where_ks_flags_most_columns():
    rng = np.random.default_rng(11)
    n = 1_000_000
    # Differences nobody would act on (a hundredth of a standard deviation, a 0.3 point
    # move between categories): significant at this n, negligible in effect.
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(6)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.012, 1, n) for i in range(6)})
    ref["same"], cur["same"] = rng.normal(size=n), rng.normal(size=n)
    ref["cat"] = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    cur["cat"] = rng.choice(["a", "b", "c"], n, p=[0.497, 0.303, 0.2])

    default = check_drift(ref, cur)
    assert default.drifted_columns == []
    assert not default.dataset_drift
    assert all(c.status == "ok" for c in default.columns)
    # The test alone would have fired: the PSI floor is what keeps these columns quiet.
    assert sum(c.p_value_adjusted < 0.05 for c in default.columns) >= 5

    ks = check_drift(ref, cur, method="ks")
    assert len(ks.drifted_columns) >= 5  # the seed's rule cries wolf
    assert ks.dataset_drift


def test_flags_real_shifts_and_only_those(frame):
    ref = frame(5000, seed=1)
    cur = frame(5000, seed=2, age_shift=6, new_plan=0.3)
    report = check_drift(ref, cur)
    cols = by_name(report)
    assert set(report.drifted_columns) == {"age", "plan"}
    assert cols["age"].psi >= 0.25 and cols["age"].p_value_adjusted < 1e-6
    assert cols["age"].wasserstein_normalized == pytest.approx(0.6, abs=0.1)
    assert cols["plan"].bins["unseen_values"] == ["enterprise"]
    assert cols["monetary"].status == cols["support_calls"].status == "ok"
    assert report.dataset_drift  # 2 of 4 columns: at least half
    assert report.sorted_columns()[0].status == "drift"


def test_same_distribution_at_moderate_n_stays_ok(frame):
    report = check_drift(frame(3000, seed=5), frame(2000, seed=6))
    assert [c.status for c in report.columns] == ["ok"] * 4


def test_warn_between_the_psi_thresholds_is_not_drift(frame):
    ref, cur = frame(20000, seed=1), frame(20000, seed=2, age_shift=3.5)
    age = by_name(check_drift(ref, cur))["age"]
    assert 0.1 <= age.psi < 0.25
    assert age.status == "warn" and not age.drifted


def test_dataset_verdict_share_is_configurable(frame):
    ref, cur = frame(4000, seed=1), frame(4000, seed=2, age_shift=8)
    assert not check_drift(ref, cur).dataset_drift  # 1 of 4
    assert check_drift(ref, cur, drift_share=0.25).dataset_drift


def test_fewer_than_50_current_rows_is_insufficient_data_never_a_verdict(frame):
    report = check_drift(frame(1000, seed=1), frame(49, seed=2, age_shift=30))
    assert {c.status for c in report.columns} == {"insufficient_data"}
    assert all("only 49 current rows" in c.reason for c in report.columns)
    assert report.status == "insufficient_data" and not report.dataset_drift
    assert check_drift(frame(1000, seed=1), frame(50, seed=2)).status != "insufficient_data"


def test_single_row_is_insufficient_data(frame):
    report = check_drift(frame(1000, seed=1), frame(1, seed=2))
    assert report.status == "insufficient_data"


@pytest.mark.parametrize("side", ["baseline", "current"])
def test_all_missing_column_is_insufficient_data(side, frame):
    ref, cur = frame(1000, seed=1), frame(1000, seed=2)
    (ref if side == "baseline" else cur)["age"] = np.nan
    cols = by_name(check_drift(ref, cur))
    assert cols["age"].status == "insufficient_data"
    assert f"all values missing in the {side}" in cols["age"].reason
    assert cols["plan"].status == "ok"


def test_missing_rate_is_reported_and_a_jump_is_drift(frame):
    ref, cur = frame(5000, seed=1), frame(5000, seed=2)
    cur.loc[cur.sample(frac=0.4, random_state=0).index, "monetary"] = np.nan
    col = by_name(check_drift(ref, cur))["monetary"]
    assert col.missing_rate_reference == 0 and col.missing_rate_current == pytest.approx(0.4)
    assert col.status == "drift"
    assert col.bins["labels"][-1] == "(missing)" and col.bins["current_counts"][-1] == 2000


@pytest.mark.parametrize("value,other", [(7, 8), ("EUR", "USD")])
def test_constant_baseline_column_gets_a_value_set_check(value, other, frame):
    ref, cur = frame(1000, seed=1), frame(1000, seed=2)
    ref["const"] = value
    cur["const"] = value
    col = by_name(check_drift(ref, cur))["const"]
    assert col.test == "value_set" and col.status == "ok"
    assert col.psi is None and col.wasserstein_normalized is None
    cur.loc[:9, "const"] = other
    col = by_name(check_drift(ref, cur))["const"]
    assert col.status == "drift"
    assert col.value_set == {"reference": [value], "new_values": [other], "new_value_share": 0.01}


def test_five_distinct_numbers_are_categorical_six_are_numerical():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"five": rng.integers(0, 5, 2000), "six": rng.integers(0, 6, 2000)})
    cols = by_name(check_drift(ref, ref.sample(frac=1, random_state=1)))
    assert cols["five"].kind == "categorical"
    assert cols["five"].bins["labels"][:5] == sorted(cols["five"].bins["labels"][:5])
    assert cols["six"].kind == "numerical"


def test_user_overrides_a_column_type():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"five": rng.integers(0, 5, 2000), "six": rng.integers(0, 6, 2000)})
    types = {"five": "numerical", "six": "categorical"}
    cols = by_name(check_drift(ref, ref, column_types=types))
    assert cols["five"].kind == "numerical" and cols["six"].kind == "categorical"


def test_prediction_columns_are_compared_and_marked(frame):
    ref, cur = frame(2000, seed=1), frame(2000, seed=2)
    ref["probability"], cur["probability"] = np.linspace(0, 1, 2000), np.linspace(0.5, 1, 2000)
    col = by_name(check_drift(ref, cur))["probability"]
    assert col.role == "prediction" and col.status == "drift"


def test_json_report_has_the_documented_fields_and_no_nan(frame):
    report = check_drift(frame(2000, seed=1), frame(2000, seed=2, age_shift=8)).to_dict()
    text = json.dumps(report, allow_nan=False)
    assert isinstance(report["dataset_drift"], bool)
    for col in report["columns"]:
        assert {"name", "status", "drifted", "p_value", "p_value_adjusted", "psi"} <= set(col)
        assert col["status"] in ("drift", "warn", "ok", "insufficient_data")
    assert report["thresholds"]["psi_alert"] == 0.25 and report["thresholds"]["q"] == 0.05
    assert len(text) < 20_000


# --- the seed's check, verbatim, to compare --method ks with -------------------------
def seed_detect_drift(baseline_features, current_features):
    drift_scores = {}
    drifted_features = []
    for col in baseline_features.columns:
        statistic, p_value = ks_2samp(baseline_features[col], current_features[col])
        drift_scores[col] = {"ks_statistic": statistic, "p_value": p_value}
        if p_value < 0.05:
            drifted_features.append(col)
    return drift_scores, drifted_features


def test_ks_method_reproduces_the_seed_exactly():
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({f"f{i}": rng.normal(size=3000) for i in range(5)})
    cur = pd.DataFrame({f"f{i}": rng.normal(i * 0.03, 1, size=2500) for i in range(5)})
    scores, drifted = seed_detect_drift(ref, cur)
    report = check_drift(ref, cur, method="ks")
    assert sorted(report.drifted_columns) == sorted(drifted)
    for col in report.columns:
        assert col.statistic == scores[col.name]["ks_statistic"]
        assert col.p_value == scores[col.name]["p_value"]
        assert col.p_value_adjusted is None and col.psi is None


def test_ks_skips_text_columns_with_a_reason(frame):
    report = check_drift(frame(500, seed=1), frame(500, seed=2), method="ks")
    assert report.skipped_columns == [{"name": "plan", "reason": "ks compares numbers only"}]


# --- scikit-learn shaped methods: one conformance suite for all -----------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_conformance(name, frame):
    cls = METHODS[name]
    method = cls(drift_share=0.3)
    assert method.drift_share == 0.3 and not hasattr(method, "reference_stats_")
    with pytest.raises(UsageError, match="Call fit"):
        method.score(frame(100, seed=1))
    ref = frame(1000, seed=1)
    assert method.fit(ref) is method
    assert set(method.reference_stats_) >= {"age", "monetary"}
    same = method.score(frame(1000, seed=2))
    assert same.drifted_columns == []
    shifted = method.score(frame(1000, seed=3, age_shift=10))
    assert "age" in shifted.drifted_columns
    with pytest.raises(UsageError, match="missing from the current data"):
        method.score(frame(100, seed=1).drop(columns=["age"]))


def test_unknown_method_names_the_choices(frame):
    with pytest.raises(UsageError, match="Use one of: default, ks"):
        check_drift(frame(10, seed=1), frame(10, seed=1), method="psi-only")


def test_bad_override_is_refused(frame):
    ref = frame(100, seed=1)
    with pytest.raises(InvalidInput, match="cannot be treated as numerical"):
        check_drift(ref, ref, column_types={"plan": "numerical"})
    with pytest.raises(InvalidInput, match="unknown column"):
        check_drift(ref, ref, column_types={"nope": "categorical"})
    with pytest.raises(InvalidInput, match="not one of numerical, categorical"):
        DefaultDrift(column_types={"age": "ordinal"}).fit(ref)


def test_columns_missing_from_one_side_are_named(frame):
    ref, cur = frame(100, seed=1), frame(100, seed=2).drop(columns=["plan"])
    with pytest.raises(InvalidInput, match="'plan' missing from the current data") as err:
        check_drift(ref, cur)
    assert "--columns" in err.value.hint
    assert check_drift(ref, cur, columns=["age", "monetary"]).status == "ok"
    with pytest.raises(InvalidInput, match="in the current data but not in the baseline"):
        check_drift(cur, ref)


def test_different_types_on_each_side_are_refused(frame):
    ref, cur = frame(100, seed=1), frame(100, seed=2)
    cur["age"] = cur["age"].astype(str)
    with pytest.raises(InvalidInput, match="'age' holds number values in the baseline but text"):
        check_drift(ref, cur)


def test_empty_baseline_is_refused(frame):
    with pytest.raises(InvalidInput, match="baseline has no rows"):
        KSDrift().fit(frame(0, seed=1))


def test_false_alarm_rate_under_no_shift_is_low_at_small_and_medium_n():
    flagged = tested = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        for n_ref, n_cur in ((300, 60), (2000, 2000)):

            def sample(n, rng=rng):
                return pd.DataFrame(
                    {
                        "a": rng.normal(size=n),
                        "b": rng.lognormal(size=n),
                        "c": rng.choice(list("abcdefghij"), n),
                    }
                )

            report = check_drift(sample(n_ref), sample(n_cur))
            flagged += len(report.drifted_columns)
            tested += len(report.columns)
    assert flagged / tested <= 0.03
