"""`flowship monitor drift` and `history` end to end: exit codes, reports, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def files(frame, write_frames):
    return write_frames(frame(3000, seed=1), frame(3000, seed=2, age_shift=8, new_plan=0.3))


def test_drift_alert_exits_1_and_writes_reports(cli, files, tmp_path):
    base, cur = files
    html, out = tmp_path / "r" / "drift.html", tmp_path / "drift.json"
    result = cli(
        "monitor", "drift", "--baseline", base, "--current", cur, "--html", html, "--json", out
    )
    assert result.exit_code == 1, result.stderr
    assert "error: Monitor 'drift:" in result.stderr and "drift:column:age" in result.stderr
    assert "HTML report:" in result.stderr
    data = json.loads(out.read_text())
    assert data["dataset_drift"] is True and set(data["drifted_columns"]) == {"plan", "age"}
    assert data["run_id"] and data["alerts"][0]["key"] == "drift:dataset"
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not any(ref in page for ref in ("src=", "href=", "@import", "url("))
    assert len(page) < 60_000  # binned summaries only


def test_no_drift_exits_0_and_json_to_stdout(cli, frame, write_frames):
    base, cur = write_frames(frame(2000, seed=1), frame(2000, seed=2), fmt="csv")
    result = cli("monitor", "drift", "--baseline", base, "--current", cur, "--json", "-")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "ok" and data["dataset_drift"] is False
    assert {c["name"] for c in data["columns"]} == {"age", "monetary", "support_calls", "plan"}


def test_ks_method_and_history(cli, files):
    base, cur = files
    assert (
        cli(
            "monitor",
            "drift",
            "--baseline",
            base,
            "--current",
            cur,
            "--method",
            "ks",
            "--name",
            "seed-check",
        ).exit_code
        == 1
    )
    assert (
        cli(
            "monitor", "drift", "--baseline", base, "--current", base, "--name", "seed-check"
        ).exit_code
        == 0
    )
    runs = json.loads(cli("monitor", "history", "--json").stdout)
    assert [r["status"] for r in runs] == ["ok", "alert"]
    assert runs[1]["alerts"][0]["delivery"] == "no_webhook"
    table = cli("monitor", "history", "--name", "seed-check")
    assert table.exit_code == 0 and "seed-check" in table.stdout


def test_history_when_empty(cli):
    result = cli("monitor", "history")
    assert result.exit_code == 0 and "No monitor runs recorded yet" in result.stderr


def test_type_override_and_columns(cli, files):
    base, cur = files
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        base,
        "--current",
        cur,
        "--json",
        "-",
        "--columns",
        "support_calls,monetary",
        "--type",
        "support_calls=numerical",
    )
    assert result.exit_code == 0, result.stderr
    kinds = {c["name"]: c["kind"] for c in json.loads(result.stdout)["columns"]}
    assert kinds == {"support_calls": "numerical", "monetary": "numerical"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--baseline", "nope.parquet"], "The baseline file 'nope.parquet' does not exist."),
        (["--type", "age"], "write COLUMN=numerical or COLUMN=categorical"),
        (["--type", "age=ordinal"], "option 'column-types.age'"),
        (["--method", "psi"], "option 'method'"),
        (["--bins", "100000"], "option 'bins'"),
        (["--q", "2"], "option 'q'"),
        (["--columns", "age,ghost"], "'ghost' missing from the baseline data"),
        (["--webhook", "file:///etc/passwd"], "is not an http(s) URL"),
        (["--sql-url", "sqlite://", "--baseline", "sql:SELEC nonsense"], "query failed"),
    ],
)
def test_bad_options_exit_2_with_one_line(cli, files, args, message):
    base, cur = files
    argv = ["monitor", "drift", "--baseline", base, "--current", cur]
    if "--baseline" in args:
        argv = ["monitor", "drift", "--current", cur]
    result = cli(*argv, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_needs_a_baseline_or_a_model(cli, files):
    result = cli("monitor", "drift", "--current", files[1])
    assert result.exit_code == 2 and "give --baseline PATH or --model" in result.stderr


def test_empty_and_garbage_files(cli, files, tmp_path):
    base, _ = files
    empty, garbage = tmp_path / "empty.csv", tmp_path / "garbage.parquet"
    empty.write_text("")
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    header_only = tmp_path / "header.csv"
    header_only.write_text("age,monetary,support_calls,plan\n")
    for path, message in (
        (empty, "is empty"),
        (garbage, "is not readable as Parquet"),
        (header_only, "has no rows"),
    ):
        result = cli("monitor", "drift", "--baseline", base, "--current", path)
        assert result.exit_code == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_single_row_current_is_insufficient_not_an_alert(cli, frame, write_frames):
    base, cur = write_frames(frame(500, seed=1), frame(1, seed=2, age_shift=50))
    result = cli("monitor", "drift", "--baseline", base, "--current", cur, "--json", "-")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["status"] == "insufficient_data" and data["dataset_drift"] is False


def test_type_clash_between_files(cli, frame, tmp_path):
    base, cur = frame(200, seed=1), frame(200, seed=2)
    cur["age"] = "forty"
    base.to_parquet(tmp_path / "b.parquet")
    cur.to_parquet(tmp_path / "c.parquet")
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        tmp_path / "b.parquet",
        "--current",
        tmp_path / "c.parquet",
    )
    assert result.exit_code == 2
    assert "Column 'age' holds number values in the baseline but text values" in result.stderr


def test_hostile_column_names_are_escaped_in_html(cli, frame, tmp_path):
    evil = "<script>alert(1)</script>"
    base, cur = frame(500, seed=1), frame(500, seed=2, age_shift=15)
    base, cur = base.rename(columns={"age": evil}), cur.rename(columns={"age": evil})
    base.to_csv(tmp_path / "b.csv", index=False)
    cur.to_csv(tmp_path / "c.csv", index=False)
    html = tmp_path / "r.html"
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        tmp_path / "b.csv",
        "--current",
        tmp_path / "c.csv",
        "--html",
        html,
    )
    assert result.exit_code == 1
    page = html.read_text()
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_delta_and_sql_sources(cli, frame, tmp_path):
    from deltalake import write_deltalake
    from sqlalchemy import create_engine

    from flowship.config import get_settings

    write_deltalake(get_settings().table_uri("predictions"), frame(800, seed=2))
    db = f"sqlite:///{tmp_path / 'features.db'}"
    engine = create_engine(db)
    frame(800, seed=1).to_sql("features", engine, index=False)
    engine.dispose()
    result = cli(
        "monitor",
        "drift",
        "--baseline",
        "sql:SELECT * FROM features",
        "--sql-url",
        db,
        "--current",
        "table:predictions",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["n_reference"] == 800 and data["n_current"] == 800
    assert data["baseline"] == "sql:SELECT * FROM features"


def test_failed_run_is_recorded_as_error(cli, files):
    base, _ = files
    result = cli("monitor", "drift", "--baseline", base, "--current", "missing.csv", "--name", "m")
    assert result.exit_code == 2
    runs = json.loads(cli("monitor", "history", "--json").stdout)
    assert runs[0]["status"] == "error" and "does not exist" in runs[0]["summary"]


def test_hostile_names_are_refused_or_truncated(cli, frame, tmp_path):
    long = "c" * 400
    base, cur = frame(300, seed=1), frame(300, seed=2, age_shift=20)
    base.rename(columns={"age": long}).to_parquet(tmp_path / "b.parquet")
    cur.rename(columns={"age": long}).to_parquet(tmp_path / "c.parquet")
    args = [
        "monitor",
        "drift",
        "--baseline",
        tmp_path / "b.parquet",
        "--current",
        tmp_path / "c.parquet",
    ]
    result = cli(*args, "--json", "-")
    assert result.exit_code == 1, result.stderr  # a 400-character column still alerts
    assert len(json.loads(result.stdout)["alerts"][0]["key"]) == 300
    for name in ("x" * 201, "bad\nname"):
        refused = cli(*args, "--name", name)
        assert refused.exit_code == 2 and "must be 1 to 200 printable" in refused.stderr
