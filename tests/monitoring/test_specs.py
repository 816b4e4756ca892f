"""Monitor files (kind: monitor): validation names the file, the field and the fix."""

from __future__ import annotations

import pytest

from flowship.errors import ConfigError, NotFound
from flowship.monitoring.specs import load_spec


def write(tmp_path, text: str, name: str = "monitor.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_resolves_relative_paths(tmp_path):
    path = write(
        tmp_path,
        "kind: monitor\nname: m1\ndrift:\n  baseline: data/b.parquet\n  current: table:preds\n"
        "report:\n  html: out.html\n",
    )
    spec = load_spec(path)
    assert spec.drift.baseline == str(tmp_path / "data/b.parquet")
    assert spec.drift.current == "table:preds"
    assert spec.report.html == str(tmp_path / "out.html")


@pytest.mark.parametrize(
    "text,problem",
    [
        ("kind: job\nname: x\n", "field 'kind': Input should be 'monitor'"),
        ("kind: monitor\nname: x\n", "give at least one of drift, performance, health"),
        ("kind: monitor\nname: x\ndrift:\n  current: c.csv\n", "drift needs a baseline"),
        ("kind: monitor\nname: x\nhealth: {}\n", "health needs model"),
        (
            "kind: monitor\nname: x\ndrift:\n  baseline: b\n  current: c\n  colour: red\n",
            "unknown field 'drift.colour'",
        ),
        (
            "kind: monitor\nname: x\ndrift:\n  baseline: b\n  current: c\n  method: magic\n",
            "field 'drift.method': Input should be 'default' or 'ks' (got 'magic')",
        ),
        (
            "kind: monitor\nname: x\ndrift:\n  baseline: b\n  current: c\n  psi_warn: 0.3\n",
            "psi_alert must be >= psi_warn",
        ),
        (
            "kind: monitor\nname: '../../etc'\nhealth: {}\nmodel: M\n",
            "field 'name': String should match",
        ),
        (
            "kind: monitor\nname: x\nwebhook: javascript:alert(1)\nhealth: {}\nmodel: M\n",
            "field 'webhook': must be an http(s) URL",
        ),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("kind: monitor\n  bad: [indent\n", "is not valid YAML"),
    ],
)
def test_invalid_files(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert str(path) in err.value.message
    assert problem in err.value.message


def test_missing_and_oversized_files(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    big = write(tmp_path, "kind: monitor\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_spec(big)


def test_cli_run_reports_the_field(cli, tmp_path):
    path = write(tmp_path, "kind: monitor\nname: x\nperformance:\n  predictions: p\n")
    result = cli("monitor", "run", path)
    assert result.exit_code == 2
    assert "field 'performance.actuals' is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_monitor_file_runs_on_flowship_schedule(tmp_path, frame):
    from flowship.schedule import plan_entries, run_schedule
    from flowship.store.monitor_runs import list_runs

    frame(500, seed=1).to_parquet(tmp_path / "b.parquet")
    frame(500, seed=2, age_shift=20).to_parquet(tmp_path / "c.parquet")
    path = write(
        tmp_path,
        "kind: monitor\nname: nightly\nschedule: '* * * * * *'\n"
        "drift:\n  baseline: b.parquet\n  current: c.parquet\n",
    )
    results = []
    entries = plan_entries([path], cron=None)
    assert run_schedule(entries, max_runs=1, on_result=lambda e, ok, d: results.append((ok, d)))
    assert results == [(True, "alert")]
    assert [r.monitor for r in list_runs()] == ["nightly"]
