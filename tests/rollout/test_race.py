"""An abort or a pause that lands while an evaluation is in flight wins: the evaluation
read the rollout before it, and its write (a step, a rollback) must not undo it. The
operator's command runs as a real process between the evaluation's read and its write."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from flowship.rollout import controller
from flowship.store import db
from flowship.store import rollouts as store
from tests.rollout.test_controller import _started, healthy_step, start, weights


def in_flight():
    """The rollout as an evaluation has just read it (``tick`` before it measures)."""
    with db.transaction() as session:
        return store.active(session, "churn")


def operator(*args: str) -> None:
    """``flowship rollout ARGS`` in another process (its own database connection)."""
    argv = [sys.executable, "-c", "from flowship.cli import main; main()", "rollout", *args]
    done = subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def abort_during_a_step(cli, traffic) -> None:
    view = start(cli)
    now = healthy_step(traffic, view)  # the evaluation would take step 2
    row = in_flight()
    operator("abort", "churn", "--reason", "stop")
    result = controller._evaluate(row, now)
    assert result["action"] == "aborted", result
    assert weights(cli) == {"champion": 100.0, "challenger": 0.0}
    status = controller.status("churn")
    assert status["state"] == "aborted" and status["reason"] == "stop"
    assert [e["action"] for e in status["events"]] == ["start", "abort"]
    history = cli("deployment", "history", "churn").stdout
    assert "step 2/3" not in history  # the step was never taken


def test_an_abort_during_an_evaluation_is_not_overwritten(cli, deployment, traffic):
    abort_during_a_step(cli, traffic)


def test_a_pause_during_a_rollback_is_not_overwritten(cli, deployment, traffic):
    view = start(cli)
    t0 = _started(view)
    traffic("challenger", 200, t0, t0 + timedelta(minutes=5), errors=0.3)
    traffic("champion", 200, t0, t0 + timedelta(minutes=5))
    row = in_flight()
    operator("pause", "churn", "--reason", "looking into it")
    result = controller._evaluate(row, t0 + timedelta(minutes=6))
    assert result["action"] == "paused" and "looking into it" in result["reason"], result
    assert weights(cli) == {"champion": 90.0, "challenger": 10.0}  # nothing changed
    status = controller.status("churn")
    assert status["state"] == "paused"
    assert [e["action"] for e in status["events"]] == ["start", "pause"]


def test_an_evaluation_that_read_the_row_first_still_acts_when_nothing_changed(
    cli, deployment, traffic
):
    view = start(cli)
    now = healthy_step(traffic, view)
    row = in_flight()
    assert controller._evaluate(row, now)["action"] == "step"
    # The same evaluation again (a second, stale write of the same read) changes nothing.
    again = controller._evaluate(row, now)
    assert again["action"] == "wait" and "changed during this evaluation" in again["reason"]
    assert controller.status("churn")["step"] == 2
    assert weights(cli)["challenger"] == 50.0
