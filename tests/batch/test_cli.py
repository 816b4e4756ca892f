from __future__ import annotations

import json

import numpy as np

from tests.batch.conftest import customers, write_parquet
from tests.batch.test_local import read_delta


def test_score_with_flags_then_runs(churn, small_input, tmp_path, cli, monkeypatch):
    from flowship.cli import _render

    monkeypatch.setattr(_render.out, "_width", 200)  # a wide terminal: no cell is shortened
    out = tmp_path / "predictions"
    result = cli("score", "--model", "models:/Churn@production", "--input", small_input,
                 "--id", "customer_id", "--output", out, "--incremental")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Scored 1,000 of 1,000 rows with Churn version 1" in result.stderr
    again = cli("score", "--model", "models:/Churn@production", "--input", small_input,
                "--id", "customer_id", "--output", out, "--incremental", "--json")  # fmt: skip
    record = json.loads(again.stdout)
    assert (record["rows_out"], record["rows_skipped"]) == (0, 1000)
    listed = cli("runs", "--json")
    assert [r["rows_out"] for r in json.loads(listed.stdout)] == [0, 1000]
    table = cli("runs")
    assert table.exit_code == 0 and "succeeded" in table.stdout


def test_score_a_job_file_with_overrides(churn, small_input, tmp_path, cli):
    spec = tmp_path / "churn.yaml"
    spec.write_text(
        "name: daily-churn\n"
        "model: models:/Churn@production\n"
        f"input: {small_input}\n"
        "id: customer_id\n"
        f"output:\n  path: {tmp_path / 'out'}\n"
        "output_mode: proba\n"
    )
    result = cli("score", spec, "--date", "2026-03-01")
    assert result.exit_code == 0, result.stderr
    table = read_delta(str(tmp_path / "out"))
    assert str(table.column("prediction_date")[0]) == "2026-03-01"
    assert "probability" in table.column_names
    runs = json.loads(cli("runs", "--job", "daily-churn", "--json").stdout)
    assert len(runs) == 1 and runs[0]["job"] == "daily-churn"


def test_bad_inputs_exit_2_with_one_line(churn, small_input, tmp_path, cli):
    result = cli("score", "--model", "models:/Nope@production", "--input", small_input,
                 "--id", "customer_id", "--output", tmp_path / "o")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Model 'Nope' is not registered.")
    assert "Traceback" not in result.stderr
    missing = cli("score", "--model", "models:/Churn/1", "--input", tmp_path / "none.parquet",
                  "--id", "customer_id", "--output", tmp_path / "o")  # fmt: skip
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    flags = cli("score", "--model", "models:/Churn/1", "--id", "customer_id")
    assert flags.exit_code == 2
    assert "field 'input' is required" in flags.stderr and "field 'output'" in flags.stderr
    engine = cli("score", "--model", "m", "--input", "i", "--id", "x", "--output", "o",
                 "--engine", "gpu")  # fmt: skip
    assert engine.exit_code == 2 and "'local' or 'spark'" in engine.stderr
    status = cli("runs", "--status", "weird")
    assert status.exit_code == 2 and "Unknown status 'weird'" in status.stderr


def test_too_many_rejects_exit_1(churn, tmp_path, cli):
    frame = customers(100)
    frame.loc[:9, "frequency"] = np.nan
    source = write_parquet(tmp_path / "c.parquet", frame)
    result = cli("score", "--model", "models:/Churn/1", "--input", source,
                 "--id", "customer_id", "--output", tmp_path / "o")  # fmt: skip
    assert result.exit_code == 1
    assert "10 of 100 input rows (10.0%) were rejected" in result.stderr
    runs = cli("runs")
    assert "failed" in runs.stdout


def test_bare_output_name_is_a_flowship_table(churn, small_input, flowship_home, cli):
    result = cli("score", "--model", "models:/Churn/1", "--input", small_input,
                 "--id", "customer_id", "--output", "predictions")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert read_delta(str(flowship_home / "tables" / "predictions")).num_rows == 1000


def test_score_into_a_database_table(churn, small_input, tmp_path, cli):
    url = f"sqlite:///{tmp_path / 'out.db'}"
    result = cli("score", "--model", "models:/Churn/1", "--input", small_input, "--id",
                 "customer_id", "--output", "preds", "--output-format", "sql",
                 "--output-url", url)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Scored 1,000 of 1,000 rows" in result.stderr
    missing = cli("score", "--model", "models:/Churn/1", "--input", small_input, "--id",
                  "customer_id", "--output", "preds", "--output-format", "sql")  # fmt: skip
    assert missing.exit_code == 2 and "format 'sql' and 'url' go together" in missing.stderr
