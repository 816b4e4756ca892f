"""`flowship ab report` and `shadow report` on bad input: one line that says what is
wrong and how to fix it, exit 2, no traceback, no file written."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.monitoring.experiment_data import AS_OF, experiment, write_log


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    log, actuals = experiment(keys=300, seed=1)
    actuals.to_parquet(root / "actuals.parquet")
    actuals.rename(columns={"customer_id": "cid"}).to_parquet(root / "no_id.parquet")
    actuals.assign(churned=actuals["churned"].map({0: "no", 1: "yes"})).to_parquet(
        root / "text_label.parquet"
    )
    actuals.assign(customer_id="x" + actuals["customer_id"]).to_parquet(root / "other_ids.parquet")
    actuals.assign(churned=actuals["churned"] * 3).to_parquet(root / "not_binary.parquet")
    bad_scores = log.assign(output=log["output"] * 4)
    (root / "empty.parquet").write_bytes(b"")
    pd.DataFrame({"k": [1]}).to_parquet(root / "no_columns.parquet")
    return {
        "root": root,
        "log": write_log(log, root / "log"),
        "bad_scores": write_log(bad_scores, root / "bad_scores"),
        "one_variant": write_log(log.assign(variant="champion"), root / "one_variant"),
        "three": write_log(
            log.assign(variant=[("a", "b", "c")[i % 3] for i in range(len(log))]), root / "three"
        ),
    }


def _ab(files, *extra, actuals="actuals.parquet", log=None, label="churned", id_="customer_id"):
    return (
        "ab", "report", "churn", "--actuals", str(files["root"] / actuals), "--id", id_,
        "--label", label, "--log", log or files["log"], "--as-of", AS_OF.isoformat(), *extra,
    )  # fmt: skip


CASES = [
    ({"actuals": "no_id.parquet"}, (), "has no column(s) 'customer_id'", "Its columns are: cid"),
    ({"label": "label"}, (), "has no column(s) 'label'", "Its columns are:"),
    ({"actuals": "text_label.parquet"}, (), "holds text, not numbers", "0/1"),
    ({"actuals": "other_ids.parquet"}, (), "None of the", "--fill-missing"),
    ({"actuals": "not_binary.parquet"}, (), "other than 0 or 1", "--metric mean"),
    ({"actuals": "missing.parquet"}, (), "does not exist", "table:NAME"),
    ({"actuals": "empty.parquet"}, (), "is empty", "Point it at a sample"),
    ({"log": "bad_scores"}, (), "outside [0, 1]", "--score"),
    ({"log": "one_variant"}, (), "only one variant", None),
    ({"log": "three"}, (), "which is the candidate?", "--candidate"),
    ({}, ("--metric", "f2"), "Unknown metric 'f2'", "auc, accuracy, log_loss, mean"),
    ({}, ("--window", "soon"), "Cannot read --window 'soon'", "7d"),
    ({}, ("--window", "-3d"), "Cannot read --window '-3d'", "7d"),
    ({}, ("--weights", "champion=ninety"), "is not VARIANT=WEIGHT", "champion=50"),
    ({}, ("--weights", "a=0,b=0"), "add up to 0", None),
    ({}, ("--candidate", "nope"), "--candidate 'nope' is not a variant", "champion"),
    ({}, ("--alpha", "0.9"), "--alpha 0.9 is out of range", None),
    ({}, ("--effect", "-1"), "--effect -1.0 is not a positive number", None),
    ({}, ("--as-of", "yesterday"), "Cannot read --as-of 'yesterday'", "ISO 8601"),
    ({}, ("--score", "nope", "--metric", "auc"), "has no column(s) 'nope'", None),
    ({}, ("--key-column", "user"), "has no column(s) 'user'", None),
]


@pytest.mark.parametrize(("where", "extra", "message", "hint"), CASES)
def test_ab_bad_input_is_one_line_exit_2(cli, files, where, extra, message, hint):
    kwargs = dict(where)
    if "log" in kwargs:
        kwargs["log"] = files[kwargs["log"]]
    result = cli(*_ab(files, *extra, **kwargs))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    if hint:
        assert hint in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unknown_deployment_names_the_ones_in_the_log(cli, files):
    args = list(_ab(files))
    args[2] = "fraud"
    result = cli(*args)
    assert result.exit_code == 2
    assert "no rows for deployment 'fraud'" in result.stderr and "churn" in result.stderr


def test_nothing_is_written_on_bad_input(cli, files, tmp_path):
    page = tmp_path / "ab.html"
    result = cli(*_ab(files, "--metric", "nope", "--html", str(page)))
    assert result.exit_code == 2 and not page.exists()


def test_hostile_column_names_are_identifiers_not_sql(cli, files):
    result = cli(*_ab(files, "--label", 'churned" FROM x; DROP TABLE y; --'))
    assert result.exit_code == 2 and "has no column(s)" in result.stderr


SHADOW_CASES = [
    (("--top", "0"), "--top 0 is out of range"),
    (("--top", "100000"), "--top 100000 is out of range"),
    (("--threshold", "1.5"), "--threshold 1.5 is out of range"),
    (("--min-agreement", "2"), "--min-agreement 2.0 is out of range"),
    (("--since", "whenever"), "Cannot read --since 'whenever'"),
    (("--log", "/nonexistent/log"), "does not exist"),
    (("--score", "nope"), "has no column(s) 'nope'"),
]


@pytest.mark.parametrize(("extra", "message"), SHADOW_CASES)
def test_shadow_bad_input_is_one_line_exit_2(cli, files, extra, message):
    result = cli("shadow", "report", "churn", "--log", files["log"], *extra)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_shadow_report_of_an_unknown_deployment(cli, files):
    result = cli("shadow", "report", "fraud", "--log", files["log"], "--as-of", AS_OF.isoformat())
    assert result.exit_code == 2 and "no requests for deployment 'fraud'" in result.stderr
