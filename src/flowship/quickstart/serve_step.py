"""The tour's serving step: start ``flowship serve``, send a few requests in the seed's
``{"columns": [...], "data": [[...]]}`` format, show the answers, stop the server.

The server runs as a real subprocess on a free loopback port, exactly as a user would
start it, and is stopped with SIGTERM (a graceful shutdown) whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from flowship.config import get_settings
from flowship.errors import Unavailable

START_TIMEOUT_S = 120.0


def serve_step(
    ref: str = "models:/ChurnPredictor@production",
    *,
    output: str = "proba",
    rows: int = 3,
    say: Callable[[str], None] = lambda _: None,
) -> list[Any]:
    """Serve ``ref``, score ``rows`` customers through HTTP and return the predictions."""
    import httpx

    from flowship.quickstart.data import FEATURES, churn_frame

    with running_server([ref, "--output", output], say=say) as url:
        customers = churn_frame(rows, seed=11, first_id=500_000)
        body = {"columns": list(FEATURES), "data": customers[list(FEATURES)].values.tolist()}
        say(f"POST {url}/invocations {json.dumps(body)[:110]}...")
        response = httpx.post(f"{url}/invocations", json=body, timeout=30)
        response.raise_for_status()
        predictions = response.json()["predictions"]
        version = response.headers.get("x-flowship-model-version", "?")
        for customer, value in zip(customers["customer_id"], predictions, strict=True):
            shown = f"{value:.3f}" if isinstance(value, float) else value
            say(f"  customer {customer}: {shown}  (model version {version})")
        return predictions


@contextlib.contextmanager
def running_server(args: list[str], *, say: Callable[[str], None]) -> Iterator[str]:
    """``flowship serve ARGS`` as a subprocess on a free port, ready; yields its URL and
    stops it with SIGTERM (a graceful shutdown) whatever happens."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = get_settings()
    env = dict(
        os.environ,
        FLOWSHIP_HOME=str(settings.home_dir),
        MLFLOW_TRACKING_URI=settings.resolved_tracking_uri,
    )
    argv = [sys.executable, "-c", "from flowship.cli import main; main()", "serve", *args,
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    say(f"$ flowship serve {' '.join(args)} --port {port}")
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(server, url, log)
            yield url
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            say("Server stopped.")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(server: subprocess.Popen, url: str, log: Any) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    log.seek(0)
    tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
    raise Unavailable(
        f"The server for the tour did not become ready: {' / '.join(tail) or 'no output'}.",
        "Run it yourself to see why: flowship serve models:/ChurnPredictor@production",
    )
