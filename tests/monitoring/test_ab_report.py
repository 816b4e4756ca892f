"""`flowship ab report` end to end on a real Delta prediction log: the numbers against
an independent computation, the decision and exit codes, the split check, reports."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.monitoring.experiment_data import AS_OF, experiment, write_log

AS_OF_TEXT = AS_OF.isoformat()


@pytest.fixture(scope="module")
def better(tmp_path_factory):
    """The challenger's scores track the outcome much better than the champion's."""
    root = tmp_path_factory.mktemp("better")
    log, actuals = experiment(keys=6000, seed=1, quality={"champion": 0.5, "challenger": 2.0})
    actuals.to_parquet(root / "actuals.parquet")
    return log, actuals, write_log(log, root / "log"), str(root / "actuals.parquet")


def _args(log_path, actuals_path, *extra):
    return (
        "ab", "report", "churn", "--actuals", actuals_path, "--id", "customer_id",
        "--label", "churned", "--log", log_path, "--as-of", AS_OF_TEXT, *extra,
    )  # fmt: skip


def test_numbers_match_an_independent_computation(cli, better):
    log, actuals, log_path, actuals_path = better
    result = cli(*_args(log_path, actuals_path, "--json"))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # The same question answered with pandas and scikit-learn, per sticky key.
    first = log.groupby("key")["ts"].transform("min")
    rows = log[(log["role"] == "primary") & (log["ts"] < first + timedelta(days=30))]
    first_ts = log.groupby("key")["ts"].min()
    matured = first_ts[first_ts <= AS_OF - timedelta(days=30)].index
    units = rows[rows["key"].isin(matured)].groupby(["key", "variant"])["output"].mean()
    units = units.reset_index().merge(actuals, left_on="key", right_on="customer_id")
    by_variant = {v["variant"]: v for v in report["variants"]}
    for variant, part in units.groupby("variant"):
        row = by_variant[variant]
        assert row["matured"] == len(part)
        assert row["auc"] == pytest.approx(roc_auc_score(part["churned"], part["output"]))
        exposed = log[(log["variant"] == variant) & (log["role"] == "primary")]["key"].nunique()
        assert row["units"] == exposed and row["pending"] == exposed - len(part)
        assert row["low"] < row["auc"] < row["high"]
    c = report["comparison"]
    assert c["difference"] == pytest.approx(
        by_variant["challenger"]["auc"] - by_variant["champion"]["auc"]
    )
    assert report["decision"] == "better" and c["low"] > 0 and c["p_value"] < 0.05
    assert report["champion"] == "champion" and report["candidate"] == "challenger"
    assert report["trajectory"] and report["trajectory"][-1]["difference"] == pytest.approx(
        c["difference"]
    )


def test_a_better_candidate_passes_the_gate_and_the_table_says_why(cli, better):
    _, _, log_path, actuals_path = better
    result = cli(*_args(log_path, actuals_path, "--gate", "--weights", "champion=50,challenger=50"))
    assert result.exit_code == 0, result.stderr
    assert "challenger" in result.stdout and "champion" in result.stdout
    assert "decision: better: challenger is better than champion" in result.stderr


@pytest.mark.parametrize("metric", ["accuracy", "log_loss", "mean"])
def test_every_metric_runs_and_log_loss_direction_is_respected(cli, better, metric):
    log, actuals, log_path, actuals_path = better
    result = cli(*_args(log_path, actuals_path, "--metric", metric, "--json"))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    if metric == "log_loss":  # lower is better: a negative difference is the better one
        assert report["comparison"]["difference"] < 0 and report["decision"] == "better"
    if metric == "mean":  # the outcome rate: same population, so no real difference
        assert report["decision"] == "not_yet" and report["more_units"] > 0


def test_a_worse_candidate_exits_1(cli, tmp_path):
    log, actuals = experiment(keys=6000, seed=2, quality={"challenger": 0.25})
    actuals.to_csv(tmp_path / "actuals.csv", index=False)
    result = cli(*_args(write_log(log, tmp_path / "log"), str(tmp_path / "actuals.csv")))
    assert result.exit_code == 1
    assert "error: challenger is worse than champion: auc -" in result.stderr
    assert "Traceback" not in result.stderr


def test_too_little_data_is_not_yet_with_how_many_more_units(cli, tmp_path):
    log, actuals = experiment(keys=400, seed=3, quality={"challenger": 1.1})
    actuals.to_parquet(tmp_path / "a.parquet")
    args = _args(write_log(log, tmp_path / "log"), str(tmp_path / "a.parquet"))
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["decision"] == "not_yet" and report["more_units"] > 100
    assert f"about {report['more_units']:,} more matured units" in report["summary"]
    gated = cli(*args, "--gate")
    assert gated.exit_code == 1 and "error: Not yet decided" in gated.stderr


def test_a_broken_split_is_called_out_before_any_result(cli, better):
    _, _, log_path, actuals_path = better
    result = cli(*_args(log_path, actuals_path, "--weights", "champion=90,challenger=10"))
    assert result.exit_code == 1
    assert result.stderr.startswith("SAMPLE RATIO MISMATCH: ")
    assert "error: Sample ratio mismatch: units split" in result.stderr
    assert "weights say champion 90.0%, challenger 10.0%" in result.stderr


def test_the_default_log_is_flowships_prediction_log_table(cli, flowship_home, tmp_path):
    log, actuals = experiment(keys=600, seed=4)
    write_log(log, flowship_home / "tables" / "prediction_log")
    actuals.to_parquet(tmp_path / "a.parquet")
    result = cli(
        "ab", "report", "churn", "--actuals", str(tmp_path / "a.parquet"), "--id", "customer_id",
        "--label", "churned", "--as-of", AS_OF_TEXT, "--metric", "accuracy", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert sum(v["units"] for v in json.loads(result.stdout)["variants"]) == 600


def test_missing_outcomes_are_left_out_or_filled(cli, tmp_path):
    log, actuals = experiment(keys=800, seed=5)
    converted = actuals[actuals["churned"] == 1]  # only the positives are ever reported
    converted.to_parquet(tmp_path / "a.parquet")
    args = _args(write_log(log, tmp_path / "log"), str(tmp_path / "a.parquet"), "--json")
    left_out = json.loads(cli(*args, "--metric", "mean").stdout)
    assert all(v["mean"] == 1.0 for v in left_out["variants"])
    assert any("have no outcome yet" in n for n in left_out["notes"])
    filled = json.loads(cli(*args, "--metric", "mean", "--fill-missing", "0").stdout)
    matured = sum(v["matured"] for v in filled["variants"])
    first = log.groupby("key")["ts"].min()
    assert matured == int((first <= AS_OF - timedelta(days=30)).sum())
    rate = sum(v["mean"] * v["matured"] for v in filled["variants"]) / matured
    keys = first[first <= AS_OF - timedelta(days=30)].index
    assert rate == pytest.approx(actuals.set_index("customer_id").loc[keys, "churned"].mean())


def test_keys_seen_in_two_variants_are_left_out(cli, tmp_path):
    log, actuals = experiment(keys=600, seed=6)
    counts = log["key"].value_counts()
    key = counts[counts >= 2].index[0]
    rows = log.index[log["key"] == key]
    log.loc[rows[0], "variant"], log.loc[rows[1], "variant"] = "champion", "challenger"
    actuals.to_parquet(tmp_path / "a.parquet")
    result = cli(*_args(write_log(log, tmp_path / "log"), str(tmp_path / "a.parquet"), "--json"))
    report = json.loads(result.stdout)
    assert report["mixed_units"] == 1
    assert any("more than one variant" in n for n in report["notes"])
    assert sum(v["units"] for v in report["variants"]) == 599


def test_html_report_is_offline_and_has_its_charts(cli, better, tmp_path):
    _, _, log_path, actuals_path = better
    page_path = tmp_path / "out" / "ab.html"
    weights = "champion=50,challenger=50"
    result = cli(*_args(log_path, actuals_path, "--html", str(page_path), "--weights", weights))
    assert result.exit_code == 0, result.stderr
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    assert not any(ref in page for ref in ("<script", "src=", "href=", "@import", "url("))
    for part in ("id='ab-summary'", "id='ab-variants'", "id='ab-difference'", "id='ab-srm'"):
        assert part in page
    assert page.count("<svg") == 2 and "class='chart band'" in page
    assert len(page) < 60_000


def test_hostile_names_are_escaped_in_html(cli, tmp_path):
    log, actuals = experiment(keys=300, seed=8, weights={"<b>x</b>": 50, "challenger": 50})
    actuals.to_parquet(tmp_path / "a.parquet")
    page_path = tmp_path / "ab.html"
    result = cli(
        *_args(
            write_log(log, tmp_path / "log"), str(tmp_path / "a.parquet"), "--html", str(page_path)
        )
    )
    assert result.exit_code in (0, 1), result.stderr
    page = page_path.read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_sql_actuals_and_python_api(tmp_path):
    import sqlite3

    from flowship.monitoring.experiments import ab_report

    log, actuals = experiment(keys=500, seed=9)
    db = tmp_path / "outcomes.db"
    with sqlite3.connect(db) as conn:
        actuals.to_sql("outcomes", conn, index=False)
    report = ab_report(
        "churn",
        actuals="sql:SELECT customer_id, churned FROM outcomes",
        sql_url=f"sqlite:///{db}",
        id_column="customer_id",
        label="churned",
        log=write_log(log, tmp_path / "log"),
        metric="log_loss",
        as_of=AS_OF,
    )
    assert report.decision in ("not_yet", "better", "worse")
    assert sum(v["matured"] for v in report.variants) > 0


def test_integer_keys_join_text_ids(cli, tmp_path):
    log, actuals = experiment(keys=400, seed=10)
    log["key"] = log["key"].str[1:].astype(np.int64)
    actuals["customer_id"] = actuals["customer_id"].str[1:].astype(np.int64).astype(str)
    actuals["customer_id"] = actuals["customer_id"]  # text ids "12" against integer keys 12
    actuals.to_parquet(tmp_path / "a.parquet")
    result = cli(*_args(write_log(log, tmp_path / "log"), str(tmp_path / "a.parquet"), "--json"))
    assert result.exit_code == 0, result.stderr
    assert sum(v["matured"] for v in json.loads(result.stdout)["variants"]) > 0
