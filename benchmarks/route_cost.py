"""What routing costs a request, in CPU microseconds: a single model, a one-variant
deployment and a 90/10 sticky split answer the same requests in one process.

``benchmarks/traffic.py`` measures the split's throughput over HTTP against a single
model's; on a shared 2-core machine that ratio moves by several points from run to
run, more than most changes to the router are worth. Here each server's ASGI app is
called directly (no sockets, no uvicorn; the response headers go through uvicorn's
per-line checks, which a deployment's extra lines pay), eight requests at a time as at
concurrency 8, in blocks that alternate between the servers; the CPU time per request
of a block moves by well under a microsecond from block to block. Printed: the fastest
and the median block of each, and their difference from the single model's.

``--opcodes N`` also counts the Python bytecode instructions each server runs for N
requests (``sys.settrace`` with opcode events, after the timed blocks, so the counter
slows nothing that is timed), and prints them a request, with the functions where a
deployment runs the most more than the single model. A count does not move with the
machine's load: it tells whether a change to the request path removed work, where two
timings of a noisy machine cannot.

- single: ``models:/lr/1`` (the 30-feature logistic regression of traffic.py), bodies
  without a key;
- solo: a deployment keyed by ``customer_id`` whose one live variant is that model
  (what being a deployment costs: the key column, the routing, two more header lines,
  the per-variant metrics);
- split: the 90/10 split of traffic.py (solo, plus a hash per key and the challenger's
  own micro-batches).

    .venv/bin/python benchmarks/route_cost.py [--blocks 30] [--opcodes 1600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import traffic  # noqa: E402  (the model and the deployments of the traffic benchmark)
from _isolate import isolate  # noqa: E402

CONCURRENCY, ROUNDS = 8, 400  # requests at a time; rounds of them per block
COUNTED_FLUSH_S = 0.2  # the metrics' flush delay while opcodes are counted
# uvicorn's checks of each response header line (uvicorn/protocols/http/httptools_impl.py)
HEADER_RE = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
HEADER_VALUE_RE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
SOLO = (
    "name: solo\nmodel: lr\nkey: customer_id\nvariants:\n"
    "  champion: {ref: '1', weight: 100}\n  challenger: {ref: '2', weight: 0}\n"
)


def body(key: int | None) -> bytes:
    columns = ([] if key is None else ["customer_id"]) + traffic.COLUMNS
    row = ([] if key is None else [key]) + [0.1] * traffic.N_FEATURES
    return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()


async def call(app, payload: bytes) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:5000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                raise SystemExit(f"the server answered {message['status']}")
            for name, value in message["headers"]:
                HEADER_RE.search(name)
                HEADER_VALUE_RE.search(value)
                name.lower()

    await app(scope, receive, send)


def serving_app(target: str):
    from flowship.deployments.assign import BUCKETS
    from flowship.serving.app import ServingApp
    from flowship.serving.config import ServeConfig

    if target == "single":
        app = ServingApp(ServeConfig(ref="models:/lr/1"))
    else:
        app = ServingApp(ServeConfig(ref=f"deployment:{target}", deployment=target))
    app.holder.check()
    if app.router is not None:
        app.router.start()
        deadline = time.monotonic() + 120
        # Every bucket's race, which the router computes in a helper process: until then
        # a bucket's first key would run it here.
        while app.router.describe()["buckets_drawn"] < BUCKETS:
            if time.monotonic() > deadline:
                raise SystemExit("the assignment table was not filled within 120 s")
            time.sleep(0.1)
    return app


async def measure(blocks: int, opcodes: int) -> dict[str, list[float]]:
    apps = {name: serving_app(name) for name in ("single", "solo", "split")}
    rng = random.Random(7)
    keys = [rng.randint(1, 1_000_000) for _ in range(ROUNDS * CONCURRENCY)]
    bodies = {name: [body(None if name == "single" else key) for key in keys] for name in apps}
    per_request: dict[str, list[float]] = {name: [] for name in apps}
    order = list(apps)
    for block in range(blocks):
        for name in order if block % 2 == 0 else order[::-1]:
            app, payloads = apps[name], bodies[name]
            start = time.process_time()
            for i in range(0, len(payloads), CONCURRENCY):
                await asyncio.gather(*(call(app, p) for p in payloads[i : i + CONCURRENCY]))
            spent = time.process_time() - start
            per_request[name].append(spent / len(payloads) * 1e6)
    if opcodes:
        opcodes = min(opcodes, len(keys))
        counted = {name: await count_opcodes(apps[name], bodies[name][:opcodes]) for name in apps}
        print_opcodes(counted, opcodes)
    split = apps["split"].metrics
    split.tally.flush()
    answered = {
        v: split.variants().requests.value("split", v, "ok") for v in ("champion", "challenger")
    }
    share = answered["challenger"] / sum(answered.values())
    print(f"split: the challenger answered {share:.1%} of the requests (weight 10%)")
    for app in apps.values():
        if app.router is not None:
            await app.router.close()
        app.batcher.close()
        app.decoder.close()
    return per_request


async def count_opcodes(app, payloads: list[bytes]) -> Counter:
    """Opcodes run while ``app`` answers ``payloads``, by (file, function): every
    frame's, the event loop's and uvicorn's checks included. The metrics tally is
    flushed every ``COUNTED_FLUSH_S`` instead of every 10 ms: the counter slows requests
    about twentyfold, and a flush every 10 ms would carry a twentieth of the requests it
    carries at full speed (about a hundred)."""
    from flowship.serving import metrics

    counts: Counter = Counter()

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[(Path(code.co_filename).name, code.co_name)] += 1
        return tracer

    timed, metrics.FLUSH_S = metrics.FLUSH_S, COUNTED_FLUSH_S
    sys.settrace(tracer)
    try:
        for i in range(0, len(payloads), CONCURRENCY):
            await asyncio.gather(*(call(app, p) for p in payloads[i : i + CONCURRENCY]))
        app.metrics.tally.flush()
    finally:
        sys.settrace(None)
        metrics.FLUSH_S = timed
    return counts


def print_opcodes(counted: dict[str, Counter], requests: int) -> None:
    print(f"Python opcodes a request, {requests} requests each")
    single = counted["single"]
    for name, counts in counted.items():
        print(f"{name:8} {sum(counts.values()) / requests:8.0f}")
        if name == "single":
            continue
        more = Counter(counts)
        more.subtract(single)
        top = [(where, n) for where, n in more.most_common(8) if n >= requests]
        for (file, function), n in top:
            print(f"    {n / requests:+7.1f}  {file}:{function}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30, help="blocks of each server")
    parser.add_argument(
        "--opcodes", type=int, default=0, help="also count the opcodes of this many requests"
    )
    args = parser.parse_args()
    if args.blocks < 1 or args.opcodes < 0:
        parser.error("--blocks takes 1 or more, --opcodes 0 or more (requests to count)")
    isolate()
    home = Path(tempfile.mkdtemp(prefix="flowship-route-cost-"))
    uri = traffic.register(home)
    os.environ.update(MLFLOW_TRACKING_URI=uri, FLOWSHIP_HOME=str(home / "home"))
    flowship = [sys.executable, "-c", "from flowship.cli import main; main()"]
    for name, text in (("solo", SOLO), ("split", traffic.deployment("split"))):
        path = home / f"{name}.yaml"
        path.write_text(text)
        subprocess.run(
            [*flowship, "deployment", "apply", str(path)], check=True, capture_output=True
        )
    try:
        per_request = asyncio.run(measure(args.blocks, args.opcodes))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    fastest = {name: min(values) for name, values in per_request.items()}
    median = {name: statistics.median(values) for name, values in per_request.items()}
    print(f"CPU us per request, {args.blocks} blocks of {ROUNDS * CONCURRENCY} requests each")
    print(f"{'server':8} {'fastest':>8} {'median':>8} {'fastest - single':>17}")
    for name in per_request:
        print(
            f"{name:8} {fastest[name]:8.1f} {median[name]:8.1f} "
            f"{fastest[name] - fastest['single']:+17.1f}"
        )


if __name__ == "__main__":
    main()
