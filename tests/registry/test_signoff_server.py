"""Sign-off against MLflow's real basic-auth server: who acted is who the server
authenticated, MLflow's permissions decide who may write, and every rule of requests
and approvals holds for users made through the server's REST API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests._caches import reset_caches
from tests.registry import _auth_server
from tests.registry._auth_server import ADMIN, ADMIN_PASSWORD, PASSWORDS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    server = _auth_server.start(tmp_path_factory.mktemp("mlflow-auth"))
    yield server
    _auth_server.stop(server.process)


@pytest.fixture(scope="session")
def logged_version(auth_server, tmp_path_factory, churn_data, features, weak_model):
    """One model logged once into the server's store (as an operator with access to
    it would); each test registers its own model from these artifacts."""
    from flowship.registry import register_estimator

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSHIP_HOME", str(tmp_path_factory.mktemp("auth-home")))
        mp.setenv("MLFLOW_TRACKING_URI", auth_server.backend_uri)
        reset_caches()
        info = register_estimator("Template", weak_model, churn_data[features].head(5))
    reset_caches()
    return info.source, info.run_id


@dataclass
class Team:
    name: str
    server: _auth_server.AuthServer
    mp: pytest.MonkeyPatch
    folder: Path

    def act_as(self, user: str, password: str | None = None) -> None:
        self.mp.setenv("MLFLOW_TRACKING_USERNAME", user)
        pw = ADMIN_PASSWORD if user == ADMIN else PASSWORDS[user]
        self.mp.setenv("MLFLOW_TRACKING_PASSWORD", password or pw)

    def config(self, production: str, model: str = "") -> None:
        (self.folder / "flowship.toml").write_text(
            f"[models.{self.name}]\n{model}\n[models.{self.name}.production]\n{production}\n"
        )

    def stages(self) -> dict[str, str]:
        from flowship.registry import list_versions

        return {v.version: v.stage for v in list_versions(self.name)}

    def actions(self) -> list[tuple[str, str, str]]:
        from flowship.registry import history

        return [(e.action, e.actor, e.version) for e in history(self.name)]


@pytest.fixture
def team(auth_server, logged_version, monkeypatch, tmp_path) -> Team:
    from mlflow import MlflowClient

    name = f"Churn_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.url)
    monkeypatch.chdir(tmp_path)
    t = Team(name, auth_server, monkeypatch, tmp_path)
    t.act_as(ADMIN)
    reset_caches()
    source, run_id = logged_version
    client = MlflowClient(auth_server.url)
    client.create_registered_model(name)
    for _ in range(2):
        model_id = source.removeprefix("models:/") if source.startswith("models:/m-") else None
        client.create_model_version(name, source, run_id=run_id, model_id=model_id)
    auth_server.grant(name, "alice", "EDIT")
    for user in ("bob", "carol", "erin"):
        auth_server.grant(name, user, "MANAGE")
    return t  # dave keeps the server's default: READ


def test_request_then_approval_promotes_as_the_approver(team, cli):
    team.config('approvals = 1\napprovers = ["bob", "carol"]\nchecklist = ["stakeholder_signoff"]')
    team.act_as("alice")
    done = cli("promote", team.name, "1", "--to", "production")
    assert done.exit_code == 0, done.stderr
    assert "request #1 by alice" in done.stderr and "flowship approve 1" in done.stderr
    assert team.stages() == {"1": "None", "2": "None"}  # nothing moved yet

    listed = cli("requests", team.name, "--json")
    [req] = json.loads(listed.stdout)
    assert (req["requester"], req["state"], req["version"]) == ("alice", "pending", "1")
    assert "webhook" not in req["policy"]

    team.act_as("bob")
    done = cli("approve", "1", "--comment", "looks good")
    assert done.exit_code == 0, done.stderr
    assert "Promoted" in done.stderr and "None -> Production" in done.stderr
    assert team.stages()["1"] == "Production"
    # FLOWSHIP_ACTOR=tester (set for every test) cannot rename an authenticated user.
    assert team.actions() == [("request", "alice", "1"), ("approve", "bob", "1"),
                              ("promote", "bob", "1")]  # fmt: skip

    from mlflow import MlflowClient

    mv = MlflowClient().get_model_version(team.name, "1")
    assert mv.tags["flowship.request.1"] == "approved by bob"
    shown = cli("history", team.name, "--json")
    events = json.loads(shown.stdout)
    signoff = [g for g in events[-1]["gates"] if g["name"] == "checklist: stakeholder_signoff"]
    assert signoff[0]["detail"] == "approved by bob"
    assert "looks good" in events[1]["reason"]
    assert cli("requests", team.name).stderr.startswith("No pending")


def test_separation_of_duties(team, cli):
    team.config('approvals = 2\napprovers = ["bob", "carol", "alice"]')
    team.act_as("alice")
    assert cli("promote", team.name, "2", "--to", "production").exit_code == 0

    own = cli("approve", "1")
    assert own.exit_code == 2
    assert own.stderr.splitlines()[0] == "error: alice made request #1 and cannot approve it."

    team.act_as("erin")  # MANAGE in MLflow, but not on the approver list
    outsider = cli("approve", "1")
    assert outsider.exit_code == 2 and "erin is not an approver" in outsider.stderr

    team.act_as("bob")
    assert cli("approve", "1").exit_code == 0
    again = cli("approve", "1")
    assert again.exit_code == 2 and "one person counts once" in again.stderr
    assert team.stages()["2"] == "None"

    team.act_as("carol")
    assert cli("approve", "1").exit_code == 0
    assert team.stages()["2"] == "Production"
    assert [a for a, _, _ in team.actions()] == ["request", "approve", "approve", "promote"]


def test_read_only_user_is_refused_by_mlflow_and_nothing_changes(team, cli):
    team.act_as("dave")
    direct = cli("promote", team.name, "1", "--to", "production")
    assert direct.exit_code == 2
    assert direct.stderr.startswith("error: The MLflow server refused dave permission")
    assert "Traceback" not in direct.stderr and len(direct.stderr.splitlines()) == 2
    assert team.stages() == {"1": "None", "2": "None"}
    assert team.actions() == []

    team.config('approvals = 1\napprovers = ["bob", "dave"]')
    team.act_as("alice")
    assert cli("promote", team.name, "1", "--to", "production").exit_code == 0
    team.act_as("dave")  # listed, but MLflow lets dave only read the model
    refused = cli("approve", "1")
    assert refused.exit_code == 2 and "refused dave permission" in refused.stderr
    [req] = json.loads(cli("requests", team.name, "--json").stdout)
    assert req["approvals"] == [] and req["state"] == "pending"
    assert team.stages()["1"] == "None"


def test_wrong_password_is_one_line_exit_2(team, cli):
    team.act_as("bob", password="not-his-password")
    for args in (("promote", team.name, "1", "--to", "staging"), ("approve", "1")):
        done = cli(*args)
        assert done.exit_code == 2, done
        lines = done.stderr.splitlines()
        assert lines[0] == (
            f"error: The MLflow server at {team.server.url} did not accept the credentials "
            "for user 'bob'."
        )
        assert len(lines) == 2 and "MLFLOW_TRACKING_PASSWORD" in lines[1]
    team.act_as("bob")
    assert team.stages() == {"1": "None", "2": "None"}


def _flowship(team: Team, user: str, *args: str) -> subprocess.Popen:
    import os

    env = {
        **os.environ,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": PASSWORDS[user],
    }
    exe = Path(sys.executable).with_name("flowship")
    return subprocess.Popen(
        [str(exe), *args], env=env, cwd=team.folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("required", [1, 2])
def test_two_approvals_at_once(team, cli, required):
    _two_at_once(team, cli, required)


@pytest.mark.postgres
def test_two_approvals_at_once_on_postgresql(team, cli, pg_url):
    """The same race with flowship's state in PostgreSQL (advisory lock per model)."""
    _two_at_once(team, cli, 1)


def _two_at_once(team, cli, required):
    team.config(f'approvals = {required}\napprovers = ["bob", "carol"]')
    team.act_as("alice")
    assert cli("promote", team.name, "1", "--to", "production").exit_code == 0
    procs = [_flowship(team, user, "approve", "1") for user in ("bob", "carol")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    team.act_as("alice")
    actions = [a for a, _, _ in team.actions()]
    assert actions.count("promote") == 1  # promoted exactly once
    assert team.stages()["1"] == "Production"
    if required == 2:
        assert codes == [0, 0], results
        assert actions.count("approve") == 2
    else:  # the second finds it approved already, and says so
        assert codes == [0, 2], results
        assert actions.count("approve") == 1
        loser = next(err for code, err in results if code == 2)
        assert "is already approved" in loser


def test_stale_request_is_refused_and_admin_force_is_recorded(team, cli):
    team.config('approvals = 1\napprovers = ["bob"]\nadmins = ["erin"]')
    team.act_as("alice")
    assert cli("promote", team.name, "1", "--to", "production").exit_code == 0
    forced = cli("promote", team.name, "2", "--to", "production", "--force", "--reason", "x")
    assert forced.exit_code == 2 and "only its admins may force" in forced.stderr

    team.act_as("erin")
    emergency = cli("promote", team.name, "2", "--to", "production", "--force",
                    "--reason", "outage fix")  # fmt: skip
    assert emergency.exit_code == 0, emergency.stderr
    assert team.stages()["2"] == "Production"

    team.act_as("bob")
    stale = cli("approve", "1")
    assert stale.exit_code == 2
    assert stale.stderr.splitlines()[0] == (
        "error: Request #1 is stale: Production of "
        f"{team.name} is now version 2, not none as when request #1 was made. Nothing was changed."
    )
    assert team.stages() == {"1": "None", "2": "Production"}
    [req] = json.loads(cli("requests", team.name, "--state", "stale", "--json").stdout)
    assert req["closed_by"] == "bob"
    shown = json.loads(cli("history", team.name, "--json").stdout)
    force_event = next(e for e in shown if e["action"] == "promote")
    assert force_event["forced"] and force_event["actor"] == "erin"
    assert force_event["reason"] == "approvals bypassed by admin erin: outage fix"


class _Hook(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body)["text"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_reject_expiry_and_webhook(team, cli):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    _Hook.received = []
    url = f"http://127.0.0.1:{hook.server_port}/hook"
    try:
        team.config("approvals = 1\nrequest_expiry_days = 0.00002", model=f'webhook = "{url}"')
        team.act_as("alice")
        assert cli("promote", team.name, "1", "--to", "production").exit_code == 0
        time.sleep(2.5)  # 0.00002 days is 1.7 s
        assert cli("requests", team.name).stderr.startswith("No pending")
        team.act_as("bob")
        late = cli("approve", "1")
        assert late.exit_code == 2 and "Request #1 is already expired" in late.stderr

        team.config("approvals = 1", model=f'webhook = "{url}"')
        team.act_as("alice")
        assert cli("promote", team.name, "1", "--to", "production").exit_code == 0
        team.act_as("carol")
        assert cli("reject", "2").exit_code == 2  # a rejection needs --comment
        done = cli("reject", "2", "--comment", "drift on recency_days is unexplained")
        assert done.exit_code == 0, done.stderr
        assert cli("approve", "2").exit_code == 2
        assert team.stages()["1"] == "None"
    finally:
        hook.shutdown()
    actions = [a for a, _, _ in team.actions()]
    assert actions == ["request", "expire", "request", "reject"]
    kinds = [text.split("(")[1].split(" by ")[0] for text in _Hook.received]
    assert kinds == ["request", "expire", "request", "reject"], _Hook.received
    assert "drift on recency_days" in _Hook.received[-1]
