"""Shadows off the response path, and the prediction log under several workers, a
graceful stop and a SIGKILL, with real servers and real Delta tables."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.deployments._helpers import apply, deployment_server, read_log
from tests.deployments.conftest import write_spec
from tests.serving._server import children, metric, running

FEATURES = ["age", "tenure", "recency", "plan"]

SHADOWED = """
name: churn
model: churn
key: customer_id
variants:
  champion: {ref: "@production", weight: 100}
  slow:     {ref: "models:/sleepy/1", shadow: true}
  failing:  {ref: "models:/raises/1", shadow: true, sample: 1.0}
log: {table: prediction_log, flush_interval_s: 0.3}
"""


def body(store, customers: list) -> dict:
    rows = store.data.head(len(customers))[FEATURES].values.tolist()
    return {"columns": ["customer_id", *FEATURES],
            "data": [[c, *r] for c, r in zip(customers, rows, strict=True)]}  # fmt: skip


def test_shadows_never_touch_the_answer_and_share_its_request_id(
    cli, store, flowship_home, tmp_path
):
    apply(cli, write_spec(tmp_path / "d.yaml", SHADOWED))
    server = deployment_server(
        "churn", home=flowship_home, store=store, log=tmp_path / "s.log"
    ).start()
    ids = []
    try:
        for i in range(20):
            response = httpx.post(server.url + "/invocations", json=body(store, [i, i + 100]))
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == [1.0, 1.0]
            assert response.headers["x-flowship-variant"] == "champion"
            ids.append(response.headers["x-flowship-request-id"])
        deadline = time.monotonic() + 30
        shadow = "flowship_shadow_requests_total"
        while not metric(
            metrics := httpx.get(server.url + "/metrics").text,
            shadow, deployment="churn", variant="slow", outcome="ok",
        ):  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert metric(metrics, shadow, variant="failing", outcome="error")
    finally:
        server.stop()
    table = read_log(flowship_home / "tables" / "prediction_log")
    primary = table[table.role == "primary"]
    assert len(primary) == 40 and set(primary.request_id) == set(ids)
    slow = table[table.variant == "slow"]
    failing = table[table.variant == "failing"]
    # Every shadow copy waiting at the graceful stop may be dropped, not more.
    assert set(slow.request_id) <= set(ids) and len(slow) >= 2
    assert (slow.output == 7.0).all() and (slow.status == "ok").all()
    assert set(failing.status) == {"error"} and failing.output.isna().all()
    assert failing.error.str.contains("always fails on real data").all()
    # Row by row comparison: the same request id and key on both sides.
    joined = primary.merge(slow, on=["request_id", "key"], suffixes=("", "_shadow"))
    assert len(joined) == len(slow)
    assert (joined.model_name_shadow == "sleepy").all()


def test_a_full_shadow_queue_drops_and_counts_and_fails_nothing(
    cli, store, flowship_home, tmp_path
):
    apply(cli, write_spec(tmp_path / "d.yaml", SHADOWED))
    config = write_spec(tmp_path / "serve.yaml", "ref: unused\nmax_shadow_queue: 1\n")
    server = deployment_server(
        "churn", "--config", str(config), home=flowship_home, store=store, log=tmp_path / "s.log"
    ).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(
                lambda i: httpx.post(server.url + "/invocations", json=body(store, [i]),
                                     timeout=30).status_code,
                range(80),
            ))  # fmt: skip
        assert statuses == [200] * 80
        metrics = httpx.get(server.url + "/metrics").text
        dropped = metric(
            metrics, "flowship_shadow_dropped_total", deployment="churn", variant="slow"
        )
        assert dropped and dropped > 0
    finally:
        server.stop()


LOGGED = """
name: churn
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 50}
  challenger: {ref: "@staging", weight: 50}
log: {table: prediction_log, flush_interval_s: 0.2, flush_rows: 50}
"""


def load(server, store, seconds: float, answered: list, *, threads: int = 4) -> None:
    stop = time.monotonic() + seconds

    def run(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while time.monotonic() < stop:
                try:
                    r = client.post(server.url + "/invocations", json=body(store, [n, i, i + 1]))
                except httpx.HTTPError:
                    return  # the server was killed
                if r.status_code == 200:
                    answered.append((time.monotonic(), r.headers["x-flowship-request-id"]))
                i += 2

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def test_two_workers_lose_no_commit_and_a_graceful_stop_flushes_everything(
    cli, store, flowship_home, tmp_path
):
    from deltalake import DeltaTable

    apply(cli, write_spec(tmp_path / "d.yaml", LOGGED))
    server = deployment_server(
        "churn", "--workers", "2", home=flowship_home, store=store, log=tmp_path / "s.log"
    ).start()
    answered: list = []
    try:
        load(server, store, 6.0, answered)
    finally:
        server.stop()
    uri = str(flowship_home / "tables" / "prediction_log")
    table = read_log(uri)
    assert len(answered) > 20
    assert set(table.request_id) == {rid for _, rid in answered}
    assert len(table) == 3 * len(answered)
    history = DeltaTable(uri).history()
    writers = {h.get("engineInfo") for h in history}
    assert len(history) >= 4 and writers  # many commits, all in the log


def test_a_killed_server_loses_at_most_one_flush_interval(cli, store, flowship_home, tmp_path):
    apply(cli, write_spec(tmp_path / "d.yaml", LOGGED))
    server = deployment_server(
        "churn", home=flowship_home, store=store, log=tmp_path / "s.log"
    ).start()
    answered: list = []
    helpers: set[int] = set()  # the log's writer process (and multiprocessing's tracker)

    def kill() -> None:
        helpers.update(children(server.proc.pid))
        server.proc.send_signal(signal.SIGKILL)

    killer = threading.Timer(3.0, kill)
    killer.start()
    load(server, store, 6.0, answered, threads=2)
    killed_at = time.monotonic()
    server.proc.wait(30)
    assert server.proc.returncode == -signal.SIGKILL
    assert helpers, "the log is committed by a writer process"
    left = running(helpers, within_s=30)
    assert not left, f"process(es) {left} outlived the killed server"
    table = read_log(flowship_home / "tables" / "prediction_log")
    logged = set(table.request_id)
    assert logged <= {rid for _, rid in answered}  # the table is whole and readable
    # Everything answered more than one flush interval (0.2 s, plus a generous margin for a
    # busy machine) before the kill was committed.
    old = {rid for at, rid in answered if at < killed_at - 2.0}
    assert old and old <= logged
