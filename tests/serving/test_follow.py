"""Zero-downtime switching: a real load loop runs while the production alias moves."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from tests._caches import reset_caches
from tests.serving._server import Server, metric
from tests.serving.conftest import log_sklearn, split_body


def _register_switch_model(store, name: str) -> dict[str, list]:
    """v1 and v2 (different fits) and v3 whose serialized estimator is garbage."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from tests.serving.conftest import frame

    x = frame(300, seed=5)
    fits = {
        "1": LogisticRegression().fit(x, (x.age > 0).astype(int)),
        "2": LogisticRegression().fit(x, (x.age < 0).astype(int)),
        "3": LogisticRegression().fit(x, (x.tenure > 0).astype(int)),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store.uri)
        mp.setenv("FLOWSHIP_HOME", str(store.home))
        reset_caches()
        mlflow.set_experiment("flowship")
        for version in ("1", "2", "3"):
            log_sklearn(name, fits[version], x)
        client = MlflowClient(store.uri)
        client.set_registered_model_alias(name, "production", "1")
        source = client.get_model_version_download_uri(name, "3")
        folder = Path(unquote(urlparse(source).path)) if "://" in source else Path(source)
        files = list(folder.rglob("model.*"))  # model.skops or model.pkl
        assert files, f"no serialized model under {folder}"
        for file in files:
            file.write_bytes(b"this is not a model")
        reset_caches()
    return {v: m.predict(store.data).tolist() for v, m in fits.items()}


@pytest.fixture(scope="module")
def switch_model(serving_store) -> dict[str, list]:
    return _register_switch_model(serving_store, "switch")


def test_live_but_not_ready_while_no_version_loads(serving_store, switch_model, tmp_path):
    server = Server.flowship(
        "models:/switch/3", "--poll-interval", "0.5",
        home=tmp_path / "home", tracking_uri=serving_store.uri, log=tmp_path / "server.log",
    )  # fmt: skip
    server.ready_path = "/v2/health/live"
    server.start()
    try:
        deadline = time.monotonic() + 60
        while "Not switching to switch version 3" not in server.logs():
            assert time.monotonic() < deadline, server.logs()[-3000:]
            time.sleep(0.1)
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/ping").status_code == 503
        assert httpx.get(server.url + "/v2/models/switch/ready").status_code == 503
        response = httpx.post(server.url + "/invocations", json={"inputs": {"age": [1.0]}})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "is not loaded yet" in response.json()["message"]
        assert "switch version 3" in httpx.get(server.url + "/flowship").json()["last_error"]
        metrics = httpx.get(server.url + "/metrics").text
        assert metric(metrics, "flowship_model_load_failures_total", model="switch", version="3")
    finally:
        server.stop()


@pytest.mark.slow
def test_promotion_under_load_has_zero_failures_and_never_serves_a_corrupt_version(
    serving_store, switch_model, tmp_path
):
    from mlflow import MlflowClient

    name = "switch"
    expected = switch_model
    server = Server.flowship(
        f"models:/{name}@production", "--poll-interval", "0.3",
        home=tmp_path / "home", tracking_uri=serving_store.uri, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    data = serving_store.data
    seen: list[tuple[int, str, int, list]] = []  # (status, version, row, predictions)
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            i = worker
            while not stop.is_set():
                row = i % len(data)
                try:
                    r = http.post("/invocations", json=split_body(data.iloc[[row]]))
                    body = r.json().get("predictions") if r.status_code == 200 else r.text
                    seen.append((r.status_code, r.headers.get("x-flowship-model-version"),
                                 row, body))  # fmt: skip
                except httpx.HTTPError as exc:
                    seen.append((0, None, row, repr(exc)))
                i += 4

    def wait_for_version(version: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seen and seen[-1][1] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"never switched to {version}:\n{server.logs()[-3000:]}")

    client = MlflowClient(serving_store.uri)
    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        client.set_registered_model_alias(name, "production", "2")  # promotion
        wait_for_version("2")
        time.sleep(0.5)
        client.set_registered_model_alias(name, "production", "3")  # a corrupt version
        deadline = time.monotonic() + 30
        while "Not switching to switch version 3" not in server.logs():
            assert time.monotonic() < deadline, server.logs()[-3000:]
            time.sleep(0.1)
        time.sleep(0.5)
        assert seen[-1][1] == "2"  # still the working version
        client.set_registered_model_alias(name, "production", "1")  # rollback
        wait_for_version("1")
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        metrics = httpx.get(server.url + "/metrics").text
        server.stop()

    failures = [s for s in seen if s[0] != 200]
    assert not failures, failures[:5]
    assert {s[1] for s in seen} == {"1", "2"}
    for _, version, row, predictions in seen:  # every answer came from the version it names
        assert predictions == [expected[version][row]]
    assert len(seen) > 100
    assert metric(metrics, "flowship_model_load_failures_total", model="switch", version="3")
    assert metric(metrics, "flowship_model_switches_total", model="switch")


def test_readiness_turns_off_when_the_ref_names_nothing(serving_store, tmp_path):
    """The alias is deleted: the served version is no longer what the ref names, so
    /ping says 503 (a load balancer stops sending), until the alias is back."""
    from mlflow import MlflowClient

    _register_switch_model(serving_store, "trust")
    server = Server.flowship(
        "models:/trust@production", "--poll-interval", "0.3",
        home=tmp_path / "home", tracking_uri=serving_store.uri, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    client = MlflowClient(serving_store.uri)
    try:
        client.delete_registered_model_alias("trust", "production")
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/ping").status_code == 200:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.2)
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        info = httpx.get(server.url + "/flowship").json()
        assert info["trusted"] is False and "production" in info["last_error"]
        assert "readiness is off" in server.logs()
        client.set_registered_model_alias("trust", "production", "1")
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/ping").status_code != 200:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.2)
    finally:
        server.stop()


def test_the_follow_loop_survives_unexpected_errors_with_backoff(caplog):
    """An error no one expected is logged, counted and retried; the loop never dies."""
    import asyncio

    from flowship.serving.config import ServeConfig
    from flowship.serving.follow import ModelHolder
    from flowship.serving.metrics import ServingMetrics

    class Flaky(ModelHolder):
        calls: list[float] = []

        def check(self) -> bool:
            self.calls.append(time.monotonic())
            raise RuntimeError("registry answered garbage")

    metrics = ServingMetrics()
    holder = Flaky(ServeConfig(ref="models:/x@production", poll_interval_s=0.1), metrics)

    async def main() -> None:
        task = asyncio.create_task(holder.follow())
        await asyncio.sleep(3.5)
        assert not task.done()  # still following
        task.cancel()

    asyncio.run(main())
    gaps = [b - a for a, b in zip(Flaky.calls, Flaky.calls[1:], strict=False)]
    assert len(Flaky.calls) == 3 and gaps[1] > gaps[0] * 1.5, gaps  # 1 s, then 2 s
    assert metrics.follow_errors.value() == 3
    assert "RuntimeError: registry answered garbage" in holder.last_error
    assert "Following models:/x@production failed" in caplog.text
