"""Shared pieces for the monitoring tests: seeded frames and a real webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest


def frame(n: int, *, seed: int, age_shift: float = 0.0, new_plan: float = 0.0) -> pd.DataFrame:
    """Mixed columns: two numbers, a low-cardinality integer code, a category."""
    rng = np.random.default_rng(seed)
    plans = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if new_plan:
        plans[rng.random(n) < new_plan] = "enterprise"
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 10, n),
            "monetary": rng.lognormal(3, 1, n),
            "support_calls": rng.integers(0, 4, n),
            "plan": plans,
        }
    )


@pytest.fixture(name="frame")
def frame_fixture():
    """``frame(n, seed=..., age_shift=..., new_plan=...)``: see ``frame`` above."""
    return frame


@pytest.fixture
def write_frames(tmp_path):
    """Write baseline/current frames as files and return their paths."""

    def run(baseline: pd.DataFrame, current: pd.DataFrame, *, fmt: str = "parquet"):
        paths = []
        for name, data in (("baseline", baseline), ("current", current)):
            path = tmp_path / f"{name}.{fmt}"
            if fmt == "csv":
                data.to_csv(path, index=False)
            else:
                data.to_parquet(path, index=False)
            paths.append(str(path))
        return paths

    return run


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        status = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"invalid_payload")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    """A real HTTP server on a random loopback port recording every POSTed JSON body.
    Set ``.status`` to make it answer with an error."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    """A loopback URL nobody listens on (the port was bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
