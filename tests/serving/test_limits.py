"""Timeouts, overload, readiness while busy, several workers and graceful shutdown,
against a model that sleeps for as long as it is asked to."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serving._server import Server

JSON = {"Content-Type": "application/json"}


def slow(server: Server, delay: float, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        server.url + "/invocations", json={"inputs": {"delay": [delay]}}, timeout=timeout
    )


@pytest.fixture(scope="module")
def slow_server(serving_store, tmp_path_factory):
    home = tmp_path_factory.mktemp("slow-home")
    server = Server.flowship(
        "models:/slow@production",
        "--timeout", "1", "--max-queue", "3", "--max-batch-size", "1",
        home=home, tracking_uri=serving_store.uri, log=home / "server.log",
    ).start()  # fmt: skip
    yield server
    server.stop()


def test_a_slow_request_gets_504_and_health_stays_up(slow_server):
    # The model sleeps 4 s: the 504 comes at 1 s, with seconds to spare on a busy machine.
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(slow, slow_server, 4.0)
        time.sleep(0.3)
        assert httpx.get(slow_server.url + "/v2/health/live", timeout=2).status_code == 200
        assert httpx.get(slow_server.url + "/ping", timeout=2).status_code == 200
        response = pending.result()
    assert response.status_code == 504
    assert response.json()["error_code"] == "DEADLINE_EXCEEDED"
    assert "not answered within 1 s" in response.json()["message"]
    assert time.monotonic() - started < 3.5
    time.sleep(4.0)  # let the worker thread finish the abandoned prediction
    assert slow(slow_server, 0.0).json() == {"predictions": [0.0]}


def test_overload_answers_503_with_retry_after(slow_server):
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: slow(slow_server, 0.3), range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert 503 in statuses and 200 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert "overloaded" in refused.json()["message"]
    time.sleep(1.5)
    assert slow(slow_server, 0.0).status_code == 200


def test_a_model_that_raises_gets_500_with_a_safe_message(slow_server):
    """The slow model sleeps for 'delay' seconds: a negative one makes its code raise.
    The exception's text is logged, never sent."""
    response = slow(slow_server, -1.0)
    assert response.status_code == 500
    body = response.json()
    assert body["error_code"] == "INTERNAL_ERROR"
    assert "The model raised ValueError" in body["message"]
    assert "non-negative" not in body["message"]
    assert "sleep length must be non-negative" in slow_server.logs()
    assert slow(slow_server, 0.0).json() == {"predictions": [0.0]}


@pytest.mark.slow
def test_two_workers_and_sigterm_drains_in_flight_requests(serving_store, tmp_path):
    server = Server.flowship(
        "models:/slow@production", "--workers", "2",
        home=tmp_path / "home", tracking_uri=serving_store.uri, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    try:
        workers: set[int] = set()
        sent = 0
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # both workers answer
            with httpx.Client(base_url=server.url) as http:  # new connection each round
                assert http.post("/invocations", json={"inputs": {"delay": [0.0]}}).is_success
                sent += 1
                workers.add(http.get("/flowship").json()["worker"])
        assert len(workers) == 2, workers
        # Whichever worker answers the scrape counts every worker's requests, exactly.
        for _ in range(4):
            with httpx.Client(base_url=server.url) as http:
                text = http.get("/metrics").text
            counted = re.findall(
                r'^flowship_requests_total\{[^}]*status="200"[^}]*\} (\S+)$', text, re.M
            )
            assert sum(float(v) for v in counted) == sent, text
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(slow, server, 2.0)
            time.sleep(0.7)
            assert server.proc is not None
            server.proc.terminate()  # SIGTERM while the request is being served
            response = in_flight.result()
        assert response.status_code == 200 and response.json() == {"predictions": [4.0]}
        assert server.proc.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/ping", timeout=2)
    finally:
        server.stop()
