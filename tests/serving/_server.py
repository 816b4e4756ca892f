"""Start ``flowship serve`` (or another server command) as a real subprocess on a free
loopback port, wait for readiness, and stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        log: Path,
        port: int,
        ready_path: str = "/v2/health/ready",
    ) -> None:
        self.argv, self.env, self.log, self.port = argv, env, log, port
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def flowship(cls, ref: str, *options: str, home: Path, tracking_uri: str, log: Path) -> Server:
        port = free_port()
        argv = [sys.executable, "-c", "from flowship.cli import main; main()", "serve", ref,
                "--port", str(port), *options]  # fmt: skip
        return cls(argv, env=server_env(home, tracking_uri), log=log, port=port)

    def start(self, timeout: float = 90.0) -> Server:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._out.close()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def server_env(home: Path, tracking_uri: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FLOWSHIP_HOME=str(home),
        MLFLOW_TRACKING_URI=tracking_uri,
        PYTHONUNBUFFERED="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    env.pop("FLOWSHIP_DATABASE_URL", None)
    return env


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` in a Prometheus
    text scrape (summed when several match); None when none does."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    return sum(found) if found else None


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def running(pids: set[int], *, within_s: float) -> list[int]:
    """Those of ``pids`` still running (not exited, not a zombie) after waiting up to
    ``within_s`` seconds for them to exit."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    left = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone
            continue
        if state != "Z":
            left.append(p)
    return left
