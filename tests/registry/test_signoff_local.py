"""Sign-off on the embedded default (SQLite, local MLflow store): the actor is the OS
user of the process, and the same rules hold; bad input is a one-line error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flowship.errors import ConfigError, PermissionDenied, UsageError
from flowship.registry.identity import os_user

ME = os_user()


@pytest.fixture
def local(register_two, monkeypatch, tmp_path):
    register_two()
    monkeypatch.chdir(tmp_path)

    def config(production: str) -> None:
        (tmp_path / "flowship.toml").write_text(
            f"[models.ChurnPredictor.production]\n{production}\n"
        )

    return config


def _stages():
    from flowship.registry import list_versions

    return {v.version: v.stage for v in list_versions("ChurnPredictor")}


def test_requester_is_the_os_user_whatever_flowship_actor_says(local, cli, monkeypatch):
    monkeypatch.setenv("FLOWSHIP_ACTOR", "bob")  # an environment variable claims to be bob
    from tests._caches import reset_caches

    reset_caches()
    local("approvals = 1")
    done = cli("promote", "ChurnPredictor", "2", "--to", "production", "--json")
    assert done.exit_code == 0, done.stderr
    req = json.loads(done.stdout)["request"]
    assert req["requester"] == ME and json.loads(done.stdout)["promoted"] is False
    refused = cli("approve", str(req["id"]))
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[0] == f"error: {ME} made request #1 and cannot approve it."
    assert _stages()["2"] == "None"
    # Without approvals, FLOWSHIP_ACTOR still names the actor of a plain change.
    assert cli("promote", "ChurnPredictor", "1", "--to", "staging").exit_code == 0
    from flowship.registry import history

    assert [(e.action, e.actor) for e in history("ChurnPredictor")][-1] == ("promote", "bob")


def test_os_user_comes_from_the_uid_not_the_environment(local, cli, monkeypatch):
    """$USER and $LOGNAME are what any shell sets; the uid's passwd entry is not."""
    import pwd

    from tests._caches import reset_caches

    for var in ("USER", "LOGNAME", "USERNAME"):
        monkeypatch.setenv(var, "carol")
    reset_caches()
    assert ME == pwd.getpwuid(os.geteuid()).pw_name != "carol"
    local('approvals = 1\napprovers = ["carol"]')
    done = cli("promote", "ChurnPredictor", "2", "--to", "production", "--json")
    assert json.loads(done.stdout)["request"]["requester"] == ME
    refused = cli("approve", "1")  # carol by the environment, ME by the uid
    assert refused.exit_code == 2 and f"{ME} made request #1" in refused.stderr


def test_signoff_item_needs_approvals_not_confirm(local, cli):
    local('checklist = ["stakeholder_signoff"]')
    confirmed = cli("promote", "ChurnPredictor", "2", "--to", "production",
                    "--confirm", "stakeholder_signoff")  # fmt: skip
    assert confirmed.exit_code == 2
    assert "cannot be confirmed by the promoter" in confirmed.stderr
    refused = cli("promote", "ChurnPredictor", "2", "--to", "production")
    assert refused.exit_code == 1 and "needs approvals" in refused.stdout
    local('checklist = ["stakeholder_signoff"]\napprovals = 1')
    asked = cli("promote", "ChurnPredictor", "2", "--to", "production")
    assert asked.exit_code == 0 and "pending" in asked.stdout
    # A duplicate request for the same change is refused while the first is pending.
    again = cli("promote", "ChurnPredictor", "2", "--to", "production")
    assert again.exit_code == 2 and "already waits for approval" in again.stderr


def test_withdraw_own_request_and_history_shows_it(local, cli):
    local("approvals = 1")
    assert cli("promote", "ChurnPredictor", "1", "--to", "production").exit_code == 0
    done = cli("reject", "1", "-m", "wrong version", "--json")
    assert done.exit_code == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["promoted"] is False and decision["request"]["state"] == "rejected"
    assert decision["request"]["closed_by"] == ME
    shown = json.loads(cli("history", "ChurnPredictor", "--json").stdout)
    assert [(e["action"], e["from_stage"], e["to_stage"]) for e in shown] == [
        ("request", "None", "None"), ("reject", "None", "None"),
    ]  # fmt: skip
    assert shown[0]["reason"].startswith("request #1: asks to move it None -> Production")
    assert shown[1]["reason"] == "request #1: withdrawn by the requester: wrong version"
    assert json.loads(cli("requests", "--state", "all", "--json").stdout)[0]["state"] == "rejected"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('approvals = 2\napprovers = ["bob"]', "approvals = 2 but only 1 approver(s)"),
        ('approvers = ["bob"]', "approvers are listed but approvals is 0"),
        ("approvals = 11", "less than or equal to 10"),
        ("approvals = -1", "greater than or equal to 0"),
        ('approvals = 1\napprovers = ["bob smith"]', "Invalid user name"),
        ("approvals = 1\nrequest_expiry_days = 0", "greater than 0"),
        ('approvals = "two"', "valid integer"),
        ("approval = 1", "unknown field 'models.ChurnPredictor.production.approval'"),
    ],
)
def test_bad_approval_settings_are_one_line_config_errors(local, cli, text, message):
    local(text)
    done = cli("promote", "ChurnPredictor", "1", "--to", "production")
    assert done.exit_code == 2, done
    assert message in done.stderr.splitlines()[0]
    assert "flowship.toml: " in done.stderr and "'models.ChurnPredictor.production" in done.stderr


def test_unreachable_approvals_are_refused_at_request_time(local):
    from flowship.registry import promote

    (Path.cwd() / "flowship.toml").write_text(
        f'[models.ChurnPredictor.production]\napprovals = 1\napprovers = ["{ME}"]\n'
    )
    with pytest.raises(PermissionDenied, match="cannot be met"):
        promote("ChurnPredictor", 1, "production")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("approve", "abc"), "A request id is a number, not 'abc'."),
        (("approve", "1" * 40), "A request id is a number"),
        (("approve", "#3x"), "A request id is a number"),
        (("approve", "4242"), "There is no promotion request #4242."),
        (("reject", "4242", "-m", "x"), "There is no promotion request #4242."),
        (("reject", "1", "-m", "   "), "A rejection needs a comment."),
        (("approve", "1", "-m", "x" * 2001), "the limit is 2000"),
        (("approve", "1", "-m", "two\nlines"), "control characters"),
        (("requests", "--state", "bogus"), "Unknown request state 'bogus'."),
        (("requests", "Bad/Name"), "Invalid model name"),
    ],
)
def test_hostile_input_is_one_line_exit_2(local, cli, args, message):
    local("approvals = 1")
    assert cli("promote", "ChurnPredictor", "1", "--to", "production").exit_code == 0
    done = cli(*args)
    assert done.exit_code == 2, done
    assert message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr
    assert json.loads(cli("requests", "--json").stdout)[0]["state"] == "pending"


def test_python_api(local):
    import flowship
    from flowship.registry import PromotionRequest

    local("approvals = 1")
    req = flowship.promote("ChurnPredictor", 1, "production", reason="better recall")
    assert isinstance(req, PromotionRequest) and req.reason == "better recall"
    assert [r.id for r in flowship.list_requests("ChurnPredictor")] == [req.id]
    with pytest.raises(PermissionDenied):
        flowship.approve(req.id)
    with pytest.raises(UsageError):
        flowship.reject(req.id, comment="")
    decision = flowship.reject(req.id, comment="not yet")
    assert decision.request.state == "rejected" and decision.transition is None


def test_config_error_is_a_config_error(local):
    from flowship.registry.gate_config import load_config

    local('approvals = 3\napprovers = ["a", "b"]')
    with pytest.raises(ConfigError):
        load_config(Path.cwd() / "flowship.toml")


def test_rollback_cannot_bring_an_unapproved_version_into_production(local, cli):
    assert cli("promote", "ChurnPredictor", "1", "--to", "production").exit_code == 0
    local("approvals = 1")
    refused = cli("rollback", "ChurnPredictor", "--to", "2")
    assert refused.exit_code == 2
    assert "version 2 was never in Production" in refused.stderr.splitlines()[0]
    assert _stages() == {"1": "Production", "2": "None"}
    # Through a request it may (and then rollback toggles between signed-off versions).
    assert cli("promote", "ChurnPredictor", "2", "--to", "production").exit_code == 0
    (Path.cwd() / "flowship.toml").unlink()  # the approver's machine has no config
    from flowship.registry.review import approve

    with pytest.raises(PermissionDenied):
        approve(1)  # the requester, again: the rule travels with the request
    assert _stages()["2"] == "None"


def test_an_expired_request_does_not_block_a_new_one(local, cli):
    import time

    local("approvals = 1\nrequest_expiry_days = 0.00001")  # 0.86 s
    assert cli("promote", "ChurnPredictor", "2", "--to", "production").exit_code == 0
    time.sleep(1.5)
    again = cli("promote", "ChurnPredictor", "2", "--to", "production", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["request"]["id"] == 2
    states = [r["state"] for r in json.loads(cli("requests", "--state", "all", "--json").stdout)]
    assert states == ["expired", "pending"]
