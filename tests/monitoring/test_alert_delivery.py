"""An alert claimed for delivery by a run that died before its POST is not lost: the
next run sends it. The sender is a real process killed with SIGKILL while it connects
to a real loopback socket; the next run posts to a real webhook receiver."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from flowship.monitoring import run_drift
from flowship.monitoring.specs import DriftSpec
from flowship.store import db
from flowship.store.monitor_runs import alert_states, claim_alerts, monitor_alerts
from flowship.store.tables import utcnow

SENDER = """
import sys
from flowship.monitoring import run_drift
from flowship.monitoring.specs import DriftSpec
run_drift(DriftSpec(baseline=sys.argv[1], current=sys.argv[2]), name="churn", webhook=sys.argv[3])
"""


@pytest.fixture
def drift_files(frame, write_frames):
    return write_frames(frame(2000, seed=1), frame(2000, seed=2, age_shift=8))


def test_an_alert_claimed_by_a_killed_sender_is_sent_by_the_next_run(drift_files, webhook):
    base, shifted = drift_files
    with socket.socket() as hole:  # accepts the connection, never reads the request
        hole.bind(("127.0.0.1", 0))
        hole.listen(1)
        hole.settimeout(240)
        url = f"http://127.0.0.1:{hole.getsockname()[1]}/hooks/T000/B000"
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, base, shifted, url],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            stderr=subprocess.PIPE,
        )
        try:
            conn, _ = hole.accept()  # the alert is claimed; its POST is on the way
        finally:
            sender.kill()
            sender.wait(timeout=60)
        conn.close()
    state = alert_states("churn")[0]
    assert state["active"] is True and state["delivered"] is False
    assert state["sends"] == 0

    result = run_drift(DriftSpec(baseline=base, current=shifted), name="churn", webhook=webhook.url)
    assert result.alerts[0]["delivery"] == "sent"
    assert len(webhook.received) == 1
    assert "churn" in webhook.received[0]["text"]
    state = alert_states("churn")[0]
    assert (state["delivered"], state["sends"], state["claimed_by"]) == (True, 1, None)

    again = run_drift(DriftSpec(baseline=base, current=shifted), name="churn", webhook=webhook.url)
    assert again.alerts[0]["delivery"] == "suppressed"  # sent once until it clears
    assert len(webhook.received) == 1


def _claim(at, firing={"drift:age": ("alert", "age drifted")}):  # noqa: B006
    return claim_alerts("m", firing, deliver=True, now=at)


def _set_claimant(holder: str) -> None:
    with db.transaction() as session:
        session.execute(monitor_alerts.update().values(claimed_by=holder))


def test_a_live_claim_holds_until_its_lease_runs_out(flowship_home):
    t0 = utcnow()
    assert _claim(t0)[0] == ["drift:age"]
    # Another run meanwhile: this process is alive and still sending.
    assert _claim(t0 + timedelta(seconds=10))[1] == ["drift:age"]
    # A claim from another host cannot be checked for life: its lease decides.
    _set_claimant("some-other-host:1")
    assert _claim(t0 + timedelta(seconds=10))[1] == ["drift:age"]
    assert _claim(t0 + timedelta(seconds=61))[0] == ["drift:age"]


def test_a_claim_whose_process_died_is_taken_over_at_once(flowship_home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    t0 = utcnow()
    assert _claim(t0)[0] == ["drift:age"]
    _set_claimant(f"{socket.gethostname()}:{dead.pid}")
    assert _claim(t0 + timedelta(seconds=1))[0] == ["drift:age"]
