"""Alerts: a real webhook receiver on loopback, dedup in the database, failed deliveries."""

from __future__ import annotations

import pytest

from flowship.errors import UsageError
from flowship.monitoring import run_drift
from flowship.monitoring.specs import DriftSpec
from flowship.store.monitor_runs import alert_states, list_runs


@pytest.fixture
def drift_files(frame, write_frames, tmp_path):
    base, shifted = write_frames(frame(2000, seed=1), frame(2000, seed=2, age_shift=8))
    calm = str(tmp_path / "calm.parquet")
    frame(2000, seed=3).to_parquet(calm)
    return base, shifted, calm


def run(baseline, current, webhook=None):
    return run_drift(DriftSpec(baseline=baseline, current=current), name="churn", webhook=webhook)


def test_alert_is_sent_once_until_it_clears(drift_files, webhook):
    base, shifted, calm = drift_files
    first = run(base, shifted, webhook.url)
    assert first.fired and first.status == "alert"
    assert [a["delivery"] for a in first.alerts] == ["sent"]
    assert len(webhook.received) == 1
    body = webhook.received[0]
    assert list(body) == ["text"]  # what Slack and Teams incoming webhooks accept
    assert "flowship monitor 'churn'" in body["text"] and "'age'" in body["text"]

    second = run(base, shifted, webhook.url)
    assert second.fired  # still an alert (exit code 1) ...
    assert [a["delivery"] for a in second.alerts] == ["suppressed"]
    assert len(webhook.received) == 1  # ... but not sent again

    cleared = run(base, calm, webhook.url)
    assert not cleared.fired and cleared.status == "ok"
    assert alert_states("churn")[0]["active"] is False

    again = run(base, shifted, webhook.url)
    assert [a["delivery"] for a in again.alerts] == ["sent"]
    assert len(webhook.received) == 2
    assert [r.status for r in list_runs(monitor="churn")] == ["alert", "ok", "alert", "alert"]


def test_rejected_delivery_is_recorded_and_retried(drift_files, webhook):
    base, shifted, _ = drift_files
    webhook.status = 500
    result = run(base, shifted, webhook.url)
    assert result.alerts[0]["delivery"] == "failed"
    assert result.alerts[0]["error"].startswith("HTTP 500")
    state = alert_states("churn")[0]
    assert state["delivered"] is False and state["last_error"].startswith("HTTP 500")
    webhook.status = 200
    retry = run(base, shifted, webhook.url)
    assert retry.alerts[0]["delivery"] == "sent"  # never delivered, so not deduplicated
    assert alert_states("churn")[0]["sends"] == 1


def test_unreachable_webhook_still_completes_and_records_the_run(drift_files, dead_url):
    base, shifted, _ = drift_files
    result = run(base, shifted, dead_url)
    assert result.alerts[0]["delivery"] == "failed"
    assert "ConnectError" in result.alerts[0]["error"]
    recorded = list_runs(monitor="churn")[0]
    assert recorded.status == "alert" and recorded.alerts[0]["delivery"] == "failed"


def test_without_webhook_alerts_are_logged(drift_files, caplog):
    base, shifted, _ = drift_files
    result = run(base, shifted)
    assert result.alerts[0]["delivery"] == "no_webhook"
    assert "Drift in column 'age'" in caplog.text


@pytest.mark.parametrize("url", ["ftp://x/hook", "hooks.slack.com/x", "http://"])
def test_bad_webhook_url_is_refused_before_any_work(drift_files, url):
    base, shifted, _ = drift_files
    with pytest.raises(UsageError, match="not an http"):
        run(base, shifted, url)
    assert list_runs() == []
