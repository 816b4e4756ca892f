"""Hostile requests against a real ``flowship serve`` process.

Each attack asserts the status, the time to answer, that ``/ping`` keeps answering fast
while the server works on it, and that the server process's memory (VmRSS of the real
process, from /proc) grows by less than 200 MB. The margins are generous: a shared
machine is slower than the quiet one these budgets are meant for.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.serving._server import Server, children, metric, running

JSON = {"Content-Type": "application/json"}
PARQUET = {"Content-Type": "application/vnd.apache.parquet"}
RSS_BUDGET_MB = 200
ANSWER_S = 10.0  # the answer to any attack; the quiet-machine cost is a fraction of this
PING_S = 1.0  # the target is 100 ms on a quiet machine
ATTEMPTS = 3  # an attack over its time budgets is tried again: see attack
ROW = {"age": [0.1], "tenure": [0.2], "recency": [0.3], "plan": [1]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PingWatch:
    """GET /ping every 20 ms on its own thread; remembers the slowest answer."""

    def __init__(self, server: Server) -> None:
        self.server, self.worst, self.statuses = server, 0.0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                self.statuses.add(http.get("/ping").status_code)
                self.worst = max(self.worst, time.monotonic() - started)
                time.sleep(0.02)

    def __enter__(self) -> PingWatch:
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class Outcome:
    response: httpx.Response
    seconds: float
    worst_ping: float
    growth_mb: float
    attempts: int

    def in_time(self) -> bool:
        return self.seconds < ANSWER_S and self.worst_ping < PING_S


def attack(server: Server, send: Callable[[], httpx.Response]) -> Outcome:
    """Send the attack while /ping is watched.

    A shared machine can stall any process (this one's garbage collector, the server's
    scheduling) for a second. A request that blocks the event loop blocks it on every
    attempt, so an attempt over the time budgets is tried again, up to ATTEMPTS.
    Memory growth counts from before the first attempt, so a retry never hides a leak.
    """
    assert server.proc is not None
    before = rss_mb(server.proc.pid)
    for attempt in range(1, ATTEMPTS + 1):
        with PingWatch(server) as watch:
            started = time.monotonic()
            response = send()
            seconds = time.monotonic() - started
        assert watch.statuses == {200}, watch.statuses
        outcome = Outcome(response, seconds, watch.worst, 0.0, attempt)
        if outcome.in_time():
            break
    outcome.growth_mb = rss_mb(server.proc.pid) - before
    return outcome


def within_budgets(outcome: Outcome) -> None:
    assert outcome.in_time(), outcome
    assert outcome.growth_mb < RSS_BUDGET_MB, outcome


def post(server: Server, content: bytes, headers=JSON, path="/invocations") -> httpx.Response:
    return httpx.post(server.url + path, content=content, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def target(serving_store, tmp_path_factory) -> Iterator[Server]:
    """churn@production with the default limits (20 MB bodies), warmed on every format."""
    home = tmp_path_factory.mktemp("adversarial")
    server = Server.flowship(
        "models:/churn@production", home=home, tracking_uri=serving_store.uri,
        log=home / "server.log",
    ).start()  # fmt: skip
    data = serving_store.data.head(3)
    buffer = io.BytesIO()
    data.to_parquet(buffer)
    for body, headers in [
        (data.to_csv(index=False).encode(), {"Content-Type": "text/csv"}),
        (buffer.getvalue(), PARQUET),
        (orjson.dumps({"inputs": ROW}), JSON),
    ]:
        assert post(server, body, headers).status_code == 200  # imports pandas, pyarrow
    yield server
    server.stop()


def healthy(server: Server) -> None:
    assert post(server, orjson.dumps({"inputs": ROW})).status_code == 200


# ------------------------------------------------------------------ the attacks


def test_records_that_each_name_a_new_column(target):
    """0.3 MB of 20,000 records, each with a different key: 14 s and 3.2 GB before."""
    body = orjson.dumps({"dataframe_records": [{f"k{i}": 1} for i in range(20_000)]})
    assert len(body) < 400_000
    outcome = attack(target, lambda: post(target, body))
    assert outcome.response.status_code == 400
    assert "more than the server's limit of 68" in outcome.response.json()["message"]
    within_budgets(outcome)
    healthy(target)


def test_split_bodies_naming_a_million_columns(target):
    """Three bodies of a million new column names: each once left ~70 MB behind."""
    outcomes = []
    for round in range(3):
        names = [f"r{round}c{i}" for i in range(1_000_000)]
        body = orjson.dumps({"dataframe_split": {"columns": names, "data": []}})
        outcomes.append(attack(target, lambda body=body: post(target, body)))
    for outcome in outcomes:
        assert outcome.response.status_code == 400
        assert "1000000 columns" in outcome.response.json()["message"]
        assert outcome.in_time(), outcome
    assert sum(o.growth_mb for o in outcomes) < RSS_BUDGET_MB, outcomes
    healthy(target)


@pytest.fixture(scope="module")
def parquet_bomb() -> bytes:
    """A few MB of Parquet declaring 2**31 rows of nulls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"age": pa.nulls(2**31)}), buffer, row_group_size=2**27)
    return buffer.getvalue()


def test_parquet_declaring_two_billion_rows(target, parquet_bomb):
    """One request used to kill the server process within 13 s."""
    assert len(parquet_bomb) < 5 * 1024 * 1024
    outcome = attack(target, lambda: post(target, parquet_bomb, PARQUET))
    assert outcome.response.status_code == 413
    assert "declares 2147483648 rows" in outcome.response.json()["message"]
    within_budgets(outcome)
    assert target.proc is not None and target.proc.poll() is None
    healthy(target)


# ------------------------------------------------------------------ one test per item


def test_records_with_many_rows_and_missing_keys_are_refused_by_cells(target):
    """``{}`` records cost 3 bytes each but become a row of every named column."""
    records = [{"age": 1.0, **{f"x{j}": 1 for j in range(60)}}] + [{}] * 500_000
    body = orjson.dumps({"dataframe_records": records})
    outcome = attack(target, lambda: post(target, body))
    assert outcome.response.status_code == 413
    assert "values per request" in outcome.response.json()["message"]
    within_budgets(outcome)


def test_a_csv_header_wider_than_the_limit(target):
    header = ",".join(f"c{i}" for i in range(200_000)).encode()
    outcome = attack(target, lambda: post(target, header + b"\n", {"Content-Type": "text/csv"}))
    assert outcome.response.status_code == 400
    assert "The CSV header names 200000 columns" in outcome.response.json()["message"]
    within_budgets(outcome)


def test_inputs_naming_too_many_columns(target):
    body = orjson.dumps({"inputs": {f"c{i}": [1.0] for i in range(100_000)}})
    outcome = attack(target, lambda: post(target, body))
    assert outcome.response.status_code == 400
    assert "inputs names 100000 columns" in outcome.response.json()["message"]
    within_budgets(outcome)


def test_ping_stays_fast_during_the_worst_legal_request(target, serving_store):
    """A body just under the 20 MB limit is decoded off the event loop."""
    row = serving_store.data.iloc[0].tolist()
    rows = [row] * 200_000
    body = orjson.dumps({"dataframe_split": {"columns": list(serving_store.data), "data": rows}})
    assert 10 * 1024 * 1024 < len(body) < 20 * 1024 * 1024
    outcome = attack(target, lambda: post(target, body))
    assert outcome.response.status_code == 200
    assert len(outcome.response.json()["predictions"]) == 200_000
    within_budgets(outcome)


V2_CASES = [
    # (tensors, needle)
    ([{"name": "age", "shape": [2**62, 2**62], "datatype": "FP64", "data": [1.0]}], "rows x"),
    ([{"name": "age", "shape": [3], "datatype": "FP64", "data": [1.0]}], "needs 3"),
    ([{"name": "plan", "shape": [1], "datatype": "INT64", "data": [1.5]}], "is not an integer"),
    ([{"name": "age", "shape": [1], "datatype": "BYTES", "data": ["x"]}], "cannot take"),
    ([{"name": "plan", "shape": [1], "datatype": "INT8", "data": [300]}], "bad value"),
]


@pytest.mark.parametrize(("tensors", "needle"), V2_CASES)
def test_v2_hostile_tensors_get_a_v2_400_and_are_counted(target, tensors, needle):
    before = httpx.get(target.url + "/metrics").text
    others = [
        {"name": c, "shape": [1], "datatype": "FP64", "data": [0.0]}
        for c in ("age", "tenure", "recency")
        if c not in {t["name"] for t in tensors}
    ]
    body = orjson.dumps({"inputs": tensors + others})
    outcome = attack(target, lambda: post(target, body, path="/v2/models/churn/infer"))
    response = outcome.response
    assert response.status_code in (400, 413), response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"], response.json()
    within_budgets(outcome)
    after = httpx.get(target.url + "/metrics").text
    status = str(response.status_code)
    counted = (metric(after, "flowship_requests_total", protocol="v2", status=status) or 0) - (
        metric(before, "flowship_requests_total", protocol="v2", status=status) or 0
    )
    assert counted == outcome.attempts


def test_unknown_paths_and_methods_answer_json_in_the_protocols_shape(target):
    missing = httpx.get(target.url + "/nope")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    wrong = httpx.get(target.url + "/invocations")
    assert wrong.status_code == 405 and "GET is not allowed" in wrong.json()["message"]
    v2 = httpx.post(target.url + "/v2/models/churn/ready")
    assert v2.status_code == 405 and "error" in v2.json()
    v2_missing = httpx.get(target.url + "/v2/models/other")
    assert v2_missing.status_code == 404 and "not served here" in v2_missing.json()["error"]


def test_a_foreign_host_header_is_refused_on_loopback(target):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1."""
    for path in ("/flowship", "/v2", "/invocations"):
        response = httpx.request(
            "POST" if path == "/invocations" else "GET",
            target.url + path,
            headers={"Host": "evil.example:5000", **JSON},
            content=orjson.dumps({"inputs": ROW}),
        )
        assert response.status_code == 403, (path, response.text)
        assert "bound to loopback" in response.text
    for host in ("localhost", f"127.0.0.1:{target.port}", "[::1]:80"):
        assert httpx.get(target.url + "/ping", headers={"Host": host}).status_code == 200


def test_allowed_host_opens_a_name(serving_store, tmp_path):
    server = Server.flowship(
        "models:/churn@production", "--allowed-host", "api.internal",
        "--allowed-host", "127.0.0.1", "--poll-interval", "0",
        home=tmp_path / "h", tracking_uri=serving_store.uri, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    try:
        ok = httpx.get(server.url + "/v2", headers={"Host": "api.internal:8080"})
        assert ok.status_code == 200
        refused = httpx.get(server.url + "/v2", headers={"Host": "localhost"})
        assert refused.status_code == 403 and "error" in refused.json()
    finally:
        server.stop()


# ------------------------------------------------------------------ overload


@pytest.fixture(scope="module")
def small_budget(serving_store, tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("budget")
    server = Server.flowship(
        "models:/churn@production", "--poll-interval", "0",
        "--max-body-bytes", str(1024 * 1024), "--max-inflight-bytes", str(4 * 1024 * 1024),
        "--max-requests-in-flight", "50",
        home=home, tracking_uri=serving_store.uri, log=home / "server.log",
    ).start()  # fmt: skip
    yield server
    server.stop()


def slow_client(server: Server, size: int) -> socket.socket:
    """Headers of a large body, then only its first bytes: a slow client."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
        + b'{"inputs": '
    )
    return sock


def answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(0.5)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def test_slow_clients_with_large_bodies_get_503_with_retry_after(small_budget):
    server = small_budget
    assert server.proc is not None
    before = rss_mb(server.proc.pid)
    with PingWatch(server) as watch:
        clients = [slow_client(server, 1024 * 1024 - 1) for _ in range(12)]
        time.sleep(1.0)
        answers = [answer_of(sock) for sock in clients]
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 12 - 4, answers  # 4 MiB of budget holds 4 such bodies
        assert all(b"retry-after: 1" in a.lower() for a in refused)
        assert b"request bytes are already being received" in refused[0]
        # The budget is given back when a client goes away.
        for sock in clients:
            sock.close()
        time.sleep(0.5)
        assert post(server, orjson.dumps({"inputs": ROW})).status_code == 200
    assert watch.worst < PING_S and watch.statuses == {200}
    assert rss_mb(server.proc.pid) - before < RSS_BUDGET_MB


def test_too_many_requests_in_flight_get_503(small_budget):
    server = small_budget
    clients = [slow_client(server, 100) for _ in range(80)]
    try:
        time.sleep(1.0)
        answers = [answer_of(sock) for sock in clients]
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 80 - 50, [a[:60] for a in answers]
        assert all(b"retry-after: 1" in a.lower() for a in refused)
        assert b"requests are already in flight" in refused[0]
        assert httpx.get(server.url + "/ping", timeout=PING_S).status_code == 200
    finally:
        for sock in clients:
            sock.close()
    time.sleep(0.5)
    assert post(server, orjson.dumps({"inputs": ROW})).status_code == 200


# ------------------------------------------------------------------ a killed server


def test_a_killed_server_leaves_no_decoder_process_behind(serving_store, tmp_path):
    """The OOM killer's SIGKILL gives the server no chance to stop its decoder process;
    the decoder notices its parent is gone and exits, instead of living on forever."""
    import signal

    server = Server.flowship(
        "models:/churn@production", home=tmp_path, tracking_uri=serving_store.uri,
        log=tmp_path / "server.log",
    ).start()  # fmt: skip
    assert server.proc is not None
    csv = serving_store.data.head(3).to_csv(index=False).encode()
    assert post(server, csv, {"Content-Type": "text/csv"}).status_code == 200  # decoded apart
    decoders = children(server.proc.pid)
    assert decoders, "CSV bodies are decoded in a child process"
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    left = running(decoders, within_s=30)
    assert not left, f"decoder process(es) {left} outlived the killed server"
