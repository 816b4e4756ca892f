"""Serving throughput and latency: ``flowship serve`` against ``mlflow models serve``.

Registers a 30-feature logistic regression and a 100-tree random forest in a throwaway
MLflow store, serves each with both servers (one worker each, one after the other, on
loopback), drives them with the same wrk load (single-row JSON requests in MLflow's
``dataframe_split`` format, concurrency 1 and 8) and prints req/s, p50 and p99 for both
and the ratios, and the server's CPU time per answered request (user + system of the
server process and its children, from /proc): on a shared machine throughput moves
with the neighbours' load, while CPU time per request moves far less, so before/after
comparisons of flowship itself read that column.

Needs wrk (https://github.com/wg/wrk): ``apt-get install -y wrk``.

    .venv/bin/python benchmarks/serving.py [--duration 10] [--models lr,rf]

Before/after a change to flowship itself, drive only flowship, once from another source
tree (``git archive main | tar -x -C /tmp/base``) and once from this one:

    .venv/bin/python benchmarks/serving.py --servers flowship --flowship-src /tmp/base/src
    .venv/bin/python benchmarks/serving.py --servers flowship
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _isolate import isolate

N_FEATURES = 30
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register(home: Path) -> tuple[str, list[str]]:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # Artifacts in the throwaway home too, not in ./mlruns of wherever this runs.
    mlflow.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    mlflow.set_experiment("bench")
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(N_FEATURES)]
    x = pd.DataFrame(rng.normal(size=(2000, N_FEATURES)), columns=columns)
    y = (x.iloc[:, :5].sum(axis=1) + rng.normal(0, 1, len(x)) > 0).astype(int)
    models = {
        "lr": LogisticRegression(max_iter=1000).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(x, y),
    }
    for name, model in models.items():
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                signature=infer_signature(x, model.predict(x)),
                input_example=x.head(3),
                serialization_format="cloudpickle",  # skops refuses tree internals
            )
    return uri, columns


def start(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server not ready:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (the decoder process), from /proc."""
    return sum(stat_seconds(Path(f"/proc/{task}/stat")) for task in [pid, *children(pid)])


def stat_seconds(stat: Path) -> float:
    """User + system CPU in a /proc ``stat`` file (a process's or a thread's); 0 once gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in path.read_text().split()]
    return found


def wrk(port: int, script: Path, concurrency: int, duration: int, pid: int) -> dict[str, float]:
    threads = min(concurrency, 2)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(pid) - cpu_before
    if "Non-2xx" in out:
        raise SystemExit(f"the server answered errors under load:\n{out}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    answered = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "cpu_us": cpu / answered * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--models", default="lr,rf")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--servers", default="mlflow,flowship", help="which servers to drive")
    parser.add_argument(
        "--flowship-src", type=Path, help="serve flowship from this source tree (before/after)"
    )
    args = parser.parse_args()
    isolate()
    if shutil.which("wrk") is None:
        raise SystemExit("This benchmark needs wrk: apt-get update && apt-get install -y wrk")

    home = Path(tempfile.mkdtemp(prefix="flowship-bench-"))
    uri, columns = register(home)
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [[0.1] * N_FEATURES]}})
    script = home / "post.lua"
    script.write_text(LUA.format(body=body))
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, FLOWSHIP_HOME=str(home / "home"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    servers = {
        "mlflow": lambda ref, port: [sys.executable, "-m", "mlflow", "models", "serve",
                                     "-m", ref, "--env-manager", "local", "-h", "127.0.0.1",
                                     "-p", str(port), "-w", "1"],
        "flowship": lambda ref, port: [sys.executable, "-c",
                                       "from flowship.cli import main; main()", "serve", ref,
                                       "--port", str(port), "--workers", "1",
                                       "--log-level", "warning"],
    }  # fmt: skip
    servers = {name: servers[name] for name in args.servers.split(",")}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for model in args.models.split(","):
        ref = f"models:/{model}/1"
        for server, argv in servers.items():
            port = free_port()
            server_env = dict(env)
            if server == "flowship" and args.flowship_src:
                server_env["PYTHONPATH"] = str(args.flowship_src.resolve())
            proc = start(argv(ref, port), server_env, port, home / f"{server}-{model}.log")
            try:
                check = httpx.post(f"http://127.0.0.1:{port}/invocations", content=body,
                                   headers={"Content-Type": "application/json"})  # fmt: skip
                if check.status_code != 200:
                    raise SystemExit(f"{server} answered {check.status_code}: {check.text}")
                wrk(port, script, 2, 2, proc.pid)  # warm-up
                for concurrency in (1, 8):
                    key = f"{model} c={concurrency}"
                    results.setdefault(key, {})[server] = wrk(
                        port, script, concurrency, args.duration, proc.pid
                    )
                    print(f"{key:8} {server:8} {results[key][server]}", file=sys.stderr)
            finally:
                stop(proc)

    header = f"{'load':10} {'server':9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}"
    print(f"\n{header}")
    for key, by_server in results.items():
        for server, r in by_server.items():
            print(
                f"{key:10} {server:9} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
                f" {r['cpu_us']:11.1f}"
            )
        if len(by_server) < 2:
            continue
        ours, theirs = by_server["flowship"], by_server["mlflow"]
        print(
            f"{key:10} {'ratio':9} {ours['rps'] / theirs['rps']:8.1f}x "
            f"{theirs['p50_ms'] / ours['p50_ms']:7.1f}x {theirs['p99_ms'] / ours['p99_ms']:7.1f}x"
            "  (throughput, and how many times lower the latency is)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
