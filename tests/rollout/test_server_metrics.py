"""The server_* guardrails read a real `flowship serve --deployment` server's /metrics:
per-variant counts between the step's start and now, a candidate that fails rolled back
on them, and a server that cannot be read is "not enough data yet", never a pass."""

from __future__ import annotations

import httpx

from flowship import rollout
from flowship.rollout import servers
from tests.deployments._helpers import apply, deployment_server
from tests.deployments.conftest import write_spec
from tests.rollout.test_controller import _started, healthy_step, start, weights
from tests.serving._server import free_port

FEATURES = ["age", "tenure", "recency", "plan"]
FAILING = """
name: churn
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 100}
  challenger: {ref: "models:/raises/1", weight: 0}
log: {table: prediction_log, flush_interval_s: 0.3}
"""


def send(server, store, customers: range) -> dict[int, int]:
    """One single-row request per customer; how many answered with each status."""
    rows = store.data[FEATURES].values.tolist()
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=10) as client:
        for c in customers:
            body = {"columns": ["customer_id", *FEATURES], "data": [[c, *rows[c % 40]]]}
            code = client.post(server.url + "/invocations", json=body).status_code
            statuses[code] = statuses.get(code, 0) + 1
    return statuses


def test_a_failing_candidate_is_rolled_back_on_the_servers_counts(
    cli, store, flowship_home, tmp_path
):
    apply(cli, write_spec(tmp_path / "d.yaml", FAILING))
    server = deployment_server(
        "churn", "--poll-interval", "0.3", home=flowship_home, store=store,
        log=tmp_path / "server.log",
    )  # fmt: skip
    url = server.url + "/metrics"
    # The rollout begins while its server is down: no counters at the step's start. The
    # log's own error guardrail is loosened: only the servers' counts can roll it back.
    view = start(
        cli, "--metrics-url", url, "--steps", "50,100", "--min-requests", "20",
        "--guardrail", "error_rate_increase<=1",
    )  # fmt: skip
    assert view["metrics_urls"] == [url] and _baseline() == {}
    server.start()
    try:
        send(server, store, range(1000, 1100))  # before the first good read: not counted
        first = rollout.tick("churn", owner="a")
        assert first["action"] == "wait", first
        assert f"{url} was not read when the step began (counted from now on)" in first["reason"]
        statuses = send(server, store, range(300))
        # The step's counts: every request since that read, per variant, and only those.
        counts = servers.to_window(
            servers.deltas(_baseline(), servers.scrape([url], "churn").counters)
        )
        assert counts.requests["challenger"] == counts.errors["challenger"] == statuses[500]
        assert counts.requests["champion"] == statuses[200] and counts.errors["champion"] == 0
        assert counts.requests["challenger"] + counts.requests["champion"] == 300
        assert counts.p99("champion") is not None and counts.p99("champion") > 0
        result = rollout.tick("churn", owner="a")
    finally:
        server.stop()
    assert result["action"] == "rolled_back", result
    rail = next(g for g in result["guardrails"] if g["metric"] == "server_error_rate_increase")
    assert rail["value"] == 1.0 and rail["passed"] is False
    assert result["reason"].endswith(
        "guardrail breached: server_error_rate_increase 1 (limit <= 0.01)"
    )
    assert weights(cli)["challenger"] == 0.0


def _baseline() -> dict:
    from flowship.store import db
    from flowship.store import rollouts as store

    with db.transaction() as session:
        return store.latest(session, "churn").metrics_baseline["counters"]


def test_a_server_that_cannot_be_read_is_not_a_pass(cli, deployment, traffic):
    url = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there
    view = start(cli, "--metrics-url", url)
    assert rollout.status("churn")["guardrails"][-2:] == [
        "server_error_rate_increase<=0.01",
        "server_p99_latency_ratio<=1.5",
    ]
    now = healthy_step(traffic, view, minutes=60)  # the log alone would pass and step
    result = rollout.tick("churn", owner="a", now=now)
    assert result["action"] == "wait", result
    assert f"not enough data yet: cannot read {url} (ConnectError" in result["reason"]
    assert weights(cli)["challenger"] == 10.0
    assert _started(rollout.status("churn")) == _started(view)


def test_a_restarted_server_counts_from_zero():
    before = {"u": {"champion": {"ok": 500.0, "error": 5.0}}}
    after = {"u": {"champion": {"ok": 40.0, "error": 1.0}}}  # went down: a restart
    assert servers.deltas(before, after) == {"champion": {"ok": 40.0, "error": 1.0}}


def test_p99_from_histogram_buckets_interpolates_like_prometheus():
    buckets = {0.005: 50.0, 0.01: 90.0, 0.025: 100.0, float("inf"): 100.0}
    assert servers.quantile(buckets, 0.5) == 5.0  # the top of the first bucket
    assert abs(servers.quantile(buckets, 0.99) - 23.5) < 1e-9  # 90% of 10..25 ms
    assert servers.quantile({0.01: 0.0, float("inf"): 10.0}, 0.99) == 10.0  # beyond: the bound
    assert servers.quantile({float("inf"): 0.0}, 0.99) is None


def test_an_oversized_or_endless_metrics_answer_is_not_read_without_bound(monkeypatch):
    """A /metrics answer larger than MAX_BYTES, or one dripping for longer than
    TIMEOUT_S in all, is a server that cannot be read (never a pass), not a hang."""
    import http.server
    import threading
    import time

    line = (
        b"# TYPE flowship_variant_requests_total counter\nflowship_variant_requests_total"
        b'{deployment="churn",variant="champion",outcome="ok"} 5\n'
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                if self.path == "/big":  # 40 MB of comments, then nothing
                    for _ in range(40):
                        self.wfile.write(b"# " + b"x" * (2**20 - 3) + b"\n")
                elif self.path == "/slow":  # a line every 0.1 s, for a minute
                    for _ in range(600):
                        self.wfile.write(b"# still here\n")
                        self.wfile.flush()
                        time.sleep(0.1)
                self.wfile.write(line)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the reader gave up: what the test wants

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(servers, "TIMEOUT_S", 1.0)
    try:
        started = time.monotonic()
        got = servers.scrape([f"{base}/ok", f"{base}/big", f"{base}/slow"], "churn")
        elapsed = time.monotonic() - started
    finally:
        httpd.shutdown()
    assert got.counters == {f"{base}/ok": {"champion": {"ok": 5.0}}}
    assert "larger than 32 MB" in got.failed[f"{base}/big"]
    assert "longer than 1 s" in got.failed[f"{base}/slow"]
    assert elapsed < 10
