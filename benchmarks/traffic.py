"""Deployments under load: what a sticky split, a shadow and the prediction log cost.

Registers a 30-feature logistic regression twice (v1, v2), a pyfunc that sleeps 50 ms
and one that raises on every real call, in a throwaway MLflow store; then serves each
pair being compared side by side (one worker each, loopback) and drives them with wrk in
turn, ``--rounds`` times (each server first in every other round). The table shows each
server's median round; a target's ratio is the median over rounds of the two servers'
ratio in that round (back to back, so that a machine whose speed drifts, or other work
on it, weighs on both alike):

1. split: ``flowship serve models:/lr/1`` against ``flowship serve --deployment`` with a
   90/10 sticky split on a random customer_id per request; throughput at concurrency 8.
   Target: at least 90% of the single model's.
2. shadow: the deployment with and without a shadow (lr v2, sample 1.0); median latency
   at concurrency 1. Target: at most +10%. Then shadows that sleep 50 ms and that raise
   on every call, under load: target zero failed requests.
3. log: the split with and without the prediction log (sample 1.0) at concurrency 8,
   ``--log-duration`` seconds (60 by default); target at least 85% of the unlogged
   throughput, and every answered request in the Delta table after a graceful stop.

For the pairs at concurrency 8 it also prints where each server's CPU went, in
microseconds a request over all its rounds: the event loop's thread, the server's other
threads (the log's flush thread), its helper processes (the log's writer) and wrk. A
ratio of throughputs moves by points from run to run on a shared machine; these say
which part of the server a cost lands on.

Needs wrk (``apt-get install -y wrk``).

    .venv/bin/python benchmarks/traffic.py [--duration 3] [--rounds 20] [--log-duration 60]

Many short rounds rather than a few long ones: on a shared 2-core machine one round's
ratio moves by up to 30 points (a burst of other work lands on one server's round).
Over four runs the median of 20 three-second rounds moved by 2.7 points for the split
and 5 for the log; two runs of 6 ten-second rounds, of builds a few opcodes apart,
differed by 6.5 and 15 (docs/benchmarks.md, 7 Dec 2026, 17:57-19:21 UTC).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _isolate import isolate  # noqa: E402

from serving import (  # noqa: E402  (the serving benchmark's helpers)
    children,
    free_port,
    start,
    stat_seconds,
    stop,
)

N_FEATURES = 30
FAULTY_SHADOW_S = 10  # the sleeping and the raising shadow: one round each
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(7)
request = function()
  local body = '{"dataframe_split": {"columns": [COLUMNS], "data": [[' ..
    KEY .. 'VALUES]]}}'
  return wrk.format(nil, nil, nil, body)
end
"""
PYFUNC = """
import time
import mlflow.pyfunc
from mlflow.models import set_model


class Model(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if "BEHAVIOUR" == "sleepy":
            time.sleep(0.05)
        elif (model_input["f0"] != 0).any():
            raise RuntimeError("this shadow fails on every real request")
        return (model_input["f0"] * 0).to_numpy()


set_model(Model())
"""


def register(home: Path) -> str:
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # Artifacts in the throwaway home too, not in ./mlruns of wherever this runs.
    mlflow.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    mlflow.set_experiment("bench")
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(2000, N_FEATURES)), columns=COLUMNS)
    for seed in (1, 2):
        y = (x.iloc[:, seed : seed + 5].sum(axis=1) > 0).astype(int)
        model = LogisticRegression(max_iter=1000).fit(x, y)
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name="lr",
                signature=infer_signature(x, model.predict(x)),
                serialization_format="cloudpickle",
            )  # fmt: skip
    for behaviour in ("sleepy", "raises"):
        code = home / f"{behaviour}.py"
        code.write_text(PYFUNC.replace("BEHAVIOUR", behaviour))
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model", python_model=str(code), registered_model_name=behaviour,
                signature=infer_signature(x, x.f0.to_numpy()), pip_requirements=["mlflow"],
            )  # fmt: skip
    return uri


def deployment(name: str, *, shadow: str | None = None, log: bool = False) -> str:
    text = (
        f"name: {name}\nmodel: lr\nkey: customer_id\nvariants:\n"
        "  champion: {ref: '1', weight: 90}\n  challenger: {ref: '2', weight: 10}\n"
    )
    if shadow:
        text += f"  shadow: {{ref: '{shadow}', shadow: true}}\n"
    if log:
        text += "log: {table: prediction_log, sample: 1.0}\n"
    return text


def wrk(port: int, script: Path, concurrency: int, duration: int) -> dict[str, float]:
    threads = min(concurrency, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "failed": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


CPU_PARTS = ("event loop", "other threads", "helper processes")


def cpu_parts(pid: int) -> dict[str, float]:
    """CPU seconds of server ``pid`` so far: its main thread (the event loop), its other
    threads and its child processes, from /proc."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    threads = {int(task.name): stat_seconds(task / "stat") for task in tasks}
    loop = threads.pop(pid, 0.0)
    helpers = sum(stat_seconds(Path(f"/proc/{child}/stat")) for child in children(pid))
    return dict(zip(CPU_PARTS, (loop, sum(threads.values()), helpers), strict=True))


def wrk_cpu() -> float:
    """CPU seconds of the child processes waited for so far (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_per_request(first: dict, last: dict, runs: list[dict]) -> dict[str, float]:
    requests = sum(run["requests"] for run in runs)
    cpu = {part: (last[part] - first[part]) / requests * 1e6 for part in CPU_PARTS}
    cpu["wrk"] = sum(run["wrk_cpu"] for run in runs) / requests * 1e6
    return cpu


def _median(runs: list[dict]) -> dict:
    """The run with the median throughput (its latencies with it), failures summed."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["failed"] = sum(run["failed"] for run in runs)
    return middle


def _paired(a: list[dict], b: list[dict], key: str) -> float:
    """The median over rounds of b's ``key`` over a's in the same round: on a machine
    whose speed drifts from minute to minute, the two runs of one round (back to back)
    saw the same machine, two medians taken apart may not have."""
    ratios = sorted(y[key] / x[key] for x, y in zip(a, b, strict=True))
    middle = len(ratios) // 2
    return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per round")
    parser.add_argument("--log-duration", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=20, help="alternations per pair")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    isolate()
    if shutil.which("wrk") is None:
        raise SystemExit("This benchmark needs wrk: apt-get update && apt-get install -y wrk")

    home = Path(tempfile.mkdtemp(prefix="flowship-traffic-"))
    uri = register(home)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, FLOWSHIP_HOME=str(home / "home"))
    flowship = [sys.executable, "-c", "from flowship.cli import main; main()"]
    values = ", ".join(["0.1"] * N_FEATURES)
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    scripts = {
        "plain": LUA.replace("COLUMNS", names).replace("KEY .. '", "'")
        .replace("VALUES", values),
        "keyed": LUA.replace("COLUMNS", '"customer_id", ' + names)
        .replace("KEY", "math.random(1, 1000000)").replace("VALUES", ", " + values),
    }  # fmt: skip
    for name, text in scripts.items():
        (home / f"{name}.lua").write_text(text)
    specs = {
        "split": deployment("split"),
        "shadowed": deployment("shadowed", shadow="models:/lr/2"),
        "sleepy": deployment("sleepy", shadow="models:/sleepy/1"),
        "raises": deployment("raises", shadow="models:/raises/1"),
        "logged": deployment("logged", log=True),
    }
    for name, text in specs.items():
        path = home / f"{name}.yaml"
        path.write_text(text)
        subprocess.run([*flowship, "deployment", "apply", str(path)], env=env, check=True)

    def serve(name: str, serve_args: list[str]) -> tuple[subprocess.Popen, int]:
        port = free_port()
        argv = [*flowship, "serve", *serve_args, "--port", str(port), "--log-level", "warning"]
        return start(argv, env, port, home / f"{name}.log"), port

    answered: dict[str, int] = {}  # requests wrk saw answered, per server (log check)
    rounds_of: dict[str, tuple[list, list]] = {}  # second server of a pair -> both's rounds
    cpu_of: dict[str, tuple[dict, dict]] = {}  # second server of a pair -> both's CPU

    def drive(name: str, port: int, script: str, concurrency: int, seconds: int) -> dict:
        before = wrk_cpu()
        result = wrk(port, home / f"{script}.lua", concurrency, seconds)
        result["wrk_cpu"] = wrk_cpu() - before
        answered[name] = answered.get(name, 0) + result["requests"]
        return result

    def pair(a: tuple, b: tuple, concurrency: int, total: int, rounds: int) -> tuple:
        """Both servers up at once, driven in turn (a, b, b, a, a, b, ...) so that the
        other work on a shared machine weighs on both alike; the median of the rounds."""
        (name_a, args_a, script_a), (name_b, args_b, script_b) = a, b
        proc_a, port_a = serve(name_a, args_a)
        proc_b, port_b = serve(name_b, args_b)
        runs: dict[str, list] = {name_a: [], name_b: []}
        try:
            drive(name_a, port_a, script_a, 2, 2)  # warm-up
            drive(name_b, port_b, script_b, 2, 2)
            # Between its rounds a server is idle but for its last flush of the log, so
            # its CPU from here to the end over its rounds' requests is what they cost.
            first = {name_a: cpu_parts(proc_a.pid), name_b: cpu_parts(proc_b.pid)}
            each = max(1, total // rounds)
            for round_ in range(rounds):
                # a, b, then b, a: any edge of going first (two servers of the same
                # deployment differ by a few percent in a round) falls on both alike.
                order = [(name_a, port_a, script_a), (name_b, port_b, script_b)]
                for name, port, script in order if round_ % 2 == 0 else order[::-1]:
                    runs[name].append(drive(name, port, script, concurrency, each))
            time.sleep(1.5)  # the log's last flush
            cpu_of[name_b] = tuple(
                _cpu_per_request(first[name], cpu_parts(proc.pid), runs[name])
                for name, proc in ((name_a, proc_a), (name_b, proc_b))
            )
        finally:
            stop(proc_a)
            stop(proc_b)
        rounds_of[name_b] = (runs[name_a], runs[name_b])
        return tuple(_median(runs[n]) for n in (name_a, name_b))

    d, r = args.duration, args.rounds
    single = ("single", ["models:/lr/1"], "plain")
    split = ("split", ["--deployment", "split"], "keyed")
    results: dict[str, dict] = {}
    results["single c=8"], results["split c=8"] = pair(single, split, 8, d * r, r)
    shadowed = ("shadowed", ["--deployment", "shadowed"], "keyed")
    results["split c=1"], results["shadow c=1"] = pair(split, shadowed, 1, d * r, r)
    sleepy = ("sleepy", ["--deployment", "sleepy"], "keyed")
    raises = ("raises", ["--deployment", "raises"], "keyed")
    results["sleepy shadow c=8"], results["raising shadow c=8"] = pair(
        sleepy, raises, 8, FAULTY_SHADOW_S, 1
    )
    logged = ("logged", ["--deployment", "logged"], "keyed")
    results["unlogged c=8"], results["log c=8"] = pair(split, logged, 8, args.log_duration, r)
    from deltalake import DeltaTable

    table = DeltaTable(str(home / "home" / "tables" / "prediction_log"))
    logged_rows = table.to_pyarrow_dataset().count_rows()
    commits = len(table.history())

    print(f"\n{'load':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for key, res in results.items():
        print(
            f"{key:20} {res['rps']:9.0f} {res['p50_ms']:8.2f} {res['p99_ms']:8.2f} "
            f"{res['failed']:7}"
        )
    split_ratio = _paired(*rounds_of["split"], "rps")
    shadow = _paired(*rounds_of["shadowed"], "p50_ms")
    log = _paired(*rounds_of["logged"], "rps")
    print("\nRatios: the median over rounds of each round's ratio.")
    print(f"90/10 split throughput at c=8: {split_ratio:.1%} of the single model (target >= 90%)")
    print(f"shadow at sample 1.0, p50 at c=1: {shadow - 1:+.1%} (target <= +10%)")
    print(
        "failed requests with a 50 ms shadow / a raising shadow: "
        f"{results['sleepy shadow c=8']['failed']} / {results['raising shadow c=8']['failed']}"
        " (target 0 / 0)"
    )
    print(f"prediction log at sample 1.0, c=8: {log:.1%} of unlogged throughput (target >= 85%)")
    print(
        f"log completeness: {answered['logged']} requests answered to wrk in "
        f"{args.log_duration} s (+ warm-up), {logged_rows} rows in the table after a graceful "
        f"stop ({commits} commits); up to 8 more per wrk run may be answered after wrk "
        "stopped counting"
    )
    for name, key in (("split", "rps"), ("shadowed", "p50_ms"), ("logged", "rps")):
        a, b = rounds_of[name]
        each = " ".join(f"{y[key] / x[key]:.2f}" for x, y in zip(a, b, strict=True))
        print(f"  {name}, {key} against its pair, round by round: {each}")
    print("\nCPU us per request at c=8, over all rounds of a pair:")
    print(
        f"{'pair':16} {'server':8} {'event loop':>11} {'other threads':>14} "
        f"{'helpers':>8} {'wrk':>6}"
    )
    for pair_name, names in (("split", ("single", "split")), ("logged", ("split", "logged"))):
        for name, cpu in zip(names, cpu_of[pair_name], strict=True):
            print(
                f"{' / '.join(names):16} {name:8} {cpu['event loop']:11.1f} "
                f"{cpu['other threads']:14.1f} {cpu['helper processes']:8.1f} {cpu['wrk']:6.1f}"
            )
    if args.json:
        paired = {"split": split_ratio, "shadow_p50": shadow, "log": log}
        document = {**results, "paired": paired, "logged_rows": logged_rows, "cpu_us": cpu_of}
        args.json.write_text(json.dumps(document, indent=2))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
