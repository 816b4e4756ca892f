"""The quickstart's monitoring step flags the shifted columns and writes the report."""

from __future__ import annotations

from pathlib import Path


def test_monitor_step_flags_the_shift_and_prints_the_report_path():
    from flowship.quickstart.monitor_step import monitor_step

    lines: list[str] = []
    result = monitor_step(say=lines.append)
    drift = result.reports["drift"]
    assert set(drift["drifted_columns"]) == {"recency_days", "frequency"}
    others = {c["name"]: c["status"] for c in drift["columns"] if not c["drifted"]}
    assert set(others) == {"age", "tenure_months", "monetary_total"}
    assert Path(result.html_path).is_file()
    assert any(line == f"HTML report: {result.html_path}" for line in lines)
