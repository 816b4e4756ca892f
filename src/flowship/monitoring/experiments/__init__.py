"""Experiments read from the prediction log: A/B reports on outcomes that arrive later,
and shadow reports (docs/ab.md).

    from flowship.monitoring.experiments import ab_report, shadow_report
    report = ab_report("churn", actuals="table:churn_actuals", id_column="customer_id",
                       label="churned", metric="auc", weights={"champion": 90, "challenger": 10})
    report.decision   # "better", "worse", "not_yet", "no_data" or "invalid_split"
"""

from flowship.monitoring.experiments.ab import ABReport, ab_report, check, parse_weights
from flowship.monitoring.experiments.shadow import ShadowReport, shadow_report
from flowship.monitoring.experiments.shadow import check as check_shadow

__all__ = [
    "ABReport",
    "ShadowReport",
    "ab_report",
    "check",
    "check_shadow",
    "parse_weights",
    "shadow_report",
]
