"""MLflow's own basic-auth tracking server on a loopback port, with users made through
its REST API (``mlflow server --app-name basic-auth``, the ``mlflow[auth]`` extra)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-123"
#: Users the tests act as: a requester, two approvers and an admin with MANAGE on
#: each test's model, and a user who may only read.
PASSWORDS = {
    "alice": "alice-pw-123456",
    "bob": "bob-pw-123456",
    "carol": "carol-pw-123456",
    "erin": "erin-pw-123456",
    "dave": "dave-pw-123456",
}


@dataclass
class AuthServer:
    url: str
    backend_uri: str  # the server's own store, for registering versions quickly
    process: subprocess.Popen

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(ADMIN, ADMIN_PASSWORD), timeout=30)

    def create_user(self, name: str, password: str) -> None:
        with self.admin() as c:
            r = c.post(
                "/api/2.0/mlflow/users/create", json={"username": name, "password": password}
            )
            assert r.status_code == 200, r.text

    def grant(self, model: str, user: str, permission: str) -> None:
        """``permission`` (READ, EDIT, MANAGE) on a registered model, through whichever
        permissions API the installed MLflow has."""
        with self.admin() as c:
            r = c.post(
                "/api/3.0/mlflow/users/permissions/grant",
                json={
                    "username": user,
                    "resource_type": "registered_model",
                    "resource_id": model,
                    "permission": permission,
                },
            )
            if r.status_code == 404:  # MLflow before role-based permissions
                r = c.post(
                    "/api/2.0/mlflow/registered-models/permissions/create",
                    json={"name": model, "username": user, "permission": permission},
                )
            assert r.status_code == 200, r.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path) -> AuthServer:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = true\n"
        # Password hashing on every request costs a core-second on a busy machine.
        "auth_cache_ttl_seconds = 600\n"
    )
    port = _free_port()
    backend = f"sqlite:///{root / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flowship-tests-secret",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(var, None)
    log = open(root / "server.log", "wb")  # noqa: SIM115  closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--backend-store-uri", backend, "--default-artifact-root", (root / "art").as_uri(),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-3000:])
        try:
            r = httpx.get(f"{url}/api/2.0/mlflow/users/current", auth=(ADMIN, ADMIN_PASSWORD))
            if r.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        stop(process)
        raise RuntimeError("the MLflow basic-auth server did not start within 180 s")
    server = AuthServer(url=url, backend_uri=backend, process=process)
    for user, password in PASSWORDS.items():
        server.create_user(user, password)
    return server


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
