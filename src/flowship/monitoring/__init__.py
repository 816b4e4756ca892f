"""Monitoring: data drift that does not cry wolf, performance against delayed actuals,
model health, deduplicated alerts, JSON and self-contained HTML reports.

    from flowship.monitoring import check_drift, run_monitor_file
    report = check_drift(baseline_df, current_df)          # a DriftReport
    result = run_monitor_file("monitor.yaml")              # runs, alerts, records

See docs/monitoring.md.
"""

from flowship.monitoring.drift import DefaultDrift, DriftReport, KSDrift, check_drift
from flowship.monitoring.runner import (
    MonitorResult,
    run_drift,
    run_health,
    run_monitor_file,
    run_performance,
    run_spec,
)
from flowship.monitoring.specs import MonitorSpec, load_spec

__all__ = [
    "DefaultDrift",
    "DriftReport",
    "KSDrift",
    "MonitorResult",
    "MonitorSpec",
    "check_drift",
    "load_spec",
    "run_drift",
    "run_health",
    "run_monitor_file",
    "run_performance",
    "run_spec",
]
