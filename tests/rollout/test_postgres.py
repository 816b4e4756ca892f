"""The rollout's record and its lease with flowship's state in PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowship import rollout

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_deployment(pg_url, cli, store, tmp_path):
    from tests.rollout.conftest import SPEC, write_spec

    result = cli("deployment", "apply", write_spec(tmp_path / "churn.yaml", SPEC))
    assert result.exit_code == 0, result.stderr
    return "churn"


def test_lease_steps_and_rollback_on_postgres(cli, pg_deployment, traffic):
    from datetime import datetime

    result = cli(
        "rollout", "start", "churn", "--candidate", "challenger", "--steps", "20,100",
        "--bake", "10m", "--min-requests", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    view = rollout.status("churn")
    t0 = datetime.fromisoformat(view["step_started_at"])
    assert rollout.tick("churn", owner="a", now=t0)["action"] == "wait"
    assert rollout.tick("churn", owner="b", now=t0)["action"] == "standby"
    traffic("challenger", 200, t0, t0 + timedelta(minutes=5), errors=0.2)
    traffic("champion", 200, t0, t0 + timedelta(minutes=5))
    done = rollout.tick("churn", owner="a", now=t0 + timedelta(minutes=6))
    assert done["action"] == "rolled_back", done
    assert rollout.status("churn")["state"] == "rolled_back"


def test_an_abort_during_an_evaluation_is_not_overwritten_on_postgres(cli, pg_deployment, traffic):
    from tests.rollout.test_race import abort_during_a_step

    abort_during_a_step(cli, traffic)
