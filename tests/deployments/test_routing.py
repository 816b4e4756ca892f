"""A real server for a recorded deployment: sticky row-by-row routing, who-answered
headers, the prediction log, revisions picked up with zero failed requests."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from flowship.deployments import assign
from tests.deployments._helpers import apply, deployment_server, read_log
from tests.deployments.conftest import SPLIT, WIDE_EXTRA, write_spec
from tests.serving._server import metric

FEATURES = ["age", "tenure", "recency", "plan"]
ANSWER = {"champion": 1.0, "challenger": 2.0}  # production -> v1 -> 1.0, staging -> v2 -> 2.0

LOG = "log: {table: prediction_log, sample: 1.0, flush_interval_s: 0.5}\n"
LOGGED = SPLIT + LOG


def body(store, customers: list, *, key: bool = True) -> dict:
    rows = store.data.head(len(customers))[FEATURES].values.tolist()
    if key:
        return {"columns": ["customer_id", *FEATURES],
                "data": [[c, *r] for c, r in zip(customers, rows, strict=True)]}  # fmt: skip
    return {"columns": FEATURES, "data": rows}


def revision_of(response: httpx.Response) -> str:
    """The revision in ``x-flowship-deployment: NAME; revision=N``."""
    return response.headers["x-flowship-deployment"].rpartition("; revision=")[2]


@pytest.fixture
def served(cli, store, flowship_home, tmp_path):
    apply(cli, write_spec(tmp_path / "d.yaml", LOGGED))
    server = deployment_server(
        "churn", "--poll-interval", "0.5",
        home=flowship_home, store=store, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    yield server
    server.stop()


def test_rows_are_routed_by_key_sticky_and_in_order(served, store):
    customers = list(range(1000, 1040))
    response = httpx.post(served.url + "/invocations", json=body(store, customers))
    assert response.status_code == 200, response.text
    expected = [ANSWER[assign("churn", str(c), {"champion": 90, "challenger": 10})]
                for c in customers]  # fmt: skip
    assert response.json()["predictions"] == expected
    assert set(expected) == {1.0, 2.0}  # this request really is split
    assert (
        response.headers["x-flowship-variant"] == "champion,challenger"
        or response.headers["x-flowship-variant"] == "challenger,champion"
    )
    assert response.headers["x-flowship-deployment"] == "churn; revision=1"
    again = httpx.post(served.url + "/invocations", json=body(store, customers[::-1]))
    assert again.json()["predictions"] == expected[::-1]  # sticky, whatever the order

    # One customer's rows always go to the same variant, header says which.
    for customer in (1000, 1001, 1002, 1003, 1004):
        one = httpx.post(served.url + "/invocations", json=body(store, [customer]))
        variant = assign("churn", str(customer), {"champion": 90, "challenger": 10})
        assert one.headers["x-flowship-variant"] == variant
        assert (
            one.headers["x-flowship-model-version"] == {"champion": "1", "challenger": "2"}[variant]
        )
        assert one.json()["predictions"] == [ANSWER[variant]]


def test_the_key_header_and_no_key(served, store):
    weights = {"champion": 90, "challenger": 10}
    key = next(str(c) for c in range(10_000) if assign("churn", str(c), weights) == "challenger")
    response = httpx.post(
        served.url + "/invocations", json=body(store, [0, 0, 0], key=False),
        headers={"X-Flowship-Key": key},
    )  # fmt: skip
    assert response.json()["predictions"] == [2.0, 2.0, 2.0]
    assert response.headers["x-flowship-variant"] == "challenger"
    seen = set()
    for _ in range(60):  # no key: one variant per request, at random
        answer = httpx.post(served.url + "/invocations", json=body(store, [0, 0], key=False))
        assert answer.status_code == 200
        assert len(set(answer.json()["predictions"])) == 1
        seen.add(answer.headers["x-flowship-variant"])
    assert "champion" in seen


def test_the_server_fills_its_assignment_table_off_the_event_loop(served):
    """Every bucket's race comes from a helper process soon after a revision is served
    (the keys of the first minutes would otherwise run them one by one): no request is
    sent here, so no key drew a bucket."""

    def drawn_now() -> int:
        return httpx.get(served.url + "/flowship").json()["deployment"]["buckets_drawn"]

    deadline = time.monotonic() + 60
    while (drawn := drawn_now()) < 2**18:
        assert time.monotonic() < deadline, f"{drawn} buckets drawn after 60 s"
        time.sleep(0.2)


def test_v2_says_who_answered_in_headers_and_parameters(served, store):
    customers = [1000, 1001, 1002]
    data = store.data.head(3)
    request = {
        "inputs": [
            {"name": "customer_id", "datatype": "INT64", "shape": [3], "data": customers},
            *[{"name": f, "datatype": "FP64" if f != "plan" else "INT64", "shape": [3],
               "data": data[f].tolist()} for f in FEATURES],
        ]
    }  # fmt: skip
    response = httpx.post(served.url + "/v2/models/churn/infer", json=request)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = [ANSWER[assign("churn", str(c), {"champion": 90, "challenger": 10})]
                for c in customers]  # fmt: skip
    assert answer["outputs"][0]["data"] == expected
    assert answer["parameters"]["revision"] == 1
    assert answer["parameters"]["variant"] == response.headers["x-flowship-variant"]
    assert len(answer["parameters"]["request_id"]) == 32


def test_a_request_id_is_sent_only_for_a_request_in_the_log(cli, served, store, tmp_path):
    """The id joins an answer to its rows in the prediction log; a request the log does
    not keep (here: a revision sampling none) has nothing to join and gets no id."""
    logged = httpx.post(served.url + "/invocations", json=body(store, [1]))
    assert len(logged.headers["x-flowship-request-id"]) == 32
    apply(cli, write_spec(tmp_path / "none.yaml", SPLIT + LOG.replace("1.0", "0.0")))
    deadline = time.monotonic() + 30
    while True:
        response = httpx.post(served.url + "/invocations", json=body(store, [1]))
        if revision_of(response) == "2":
            break
        assert time.monotonic() < deadline, served.logs()[-2000:]
        time.sleep(0.2)
    assert response.status_code == 200 and "x-flowship-request-id" not in response.headers
    request = {"inputs": [{"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [1]},
                          *[{"name": f, "datatype": "FP64" if f != "plan" else "INT64",
                             "shape": [1], "data": store.data[f].head(1).tolist()}
                            for f in FEATURES]]}  # fmt: skip
    v2 = httpx.post(served.url + "/v2/models/churn/infer", json=request)
    assert v2.status_code == 200, v2.text
    assert "x-flowship-request-id" not in v2.headers
    assert v2.json()["parameters"] == {"variant": v2.headers["x-flowship-variant"], "revision": 2}


def test_bad_requests_are_400_with_a_json_body(served, store):
    missing = body(store, [1000, None, 1002])
    response = httpx.post(served.url + "/invocations", json=missing)
    assert response.status_code == 400
    assert "Row 1 has no value for the key field 'customer_id'" in response.json()["message"]
    records = {"dataframe_records": [
        {"customer_id": 5, **dict(zip(FEATURES, [0.1, 0.2, 0.3, 1], strict=True))},
        dict(zip(FEATURES, [0.1, 0.2, 0.3, 1], strict=True)),
    ]}  # fmt: skip
    response = httpx.post(served.url + "/invocations", json=records)
    assert response.status_code == 400 and "Row 1 has no value" in response.json()["message"]
    bad_feature = body(store, [1, 2])
    bad_feature["data"][1][1] = "not a number"
    response = httpx.post(served.url + "/invocations", json=bad_feature)
    assert response.status_code == 400 and "age" in response.json()["message"]
    huge_key = body(store, ["x" * 100_000])
    response = httpx.post(served.url + "/invocations", json=huge_key)
    assert response.status_code == 200  # a long key is cut, not a crash
    metrics = httpx.get(served.url + "/metrics").text
    assert metric(metrics, "flowship_deployment_revision", deployment="churn") is not None


def test_every_answered_row_is_in_the_log_after_a_graceful_stop(served, store, flowship_home):
    sent = 0
    ids = []
    for i in range(30):
        customers = list(range(i * 7, i * 7 + 7))
        response = httpx.post(
            served.url + "/invocations", json=body(store, customers),
            headers={"X-Request-ID": f"client-{i}"},
        )  # fmt: skip
        assert response.status_code == 200
        sent += len(customers)
        ids.append(response.headers["x-flowship-request-id"])
    assert served.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful stop
    table = read_log(flowship_home / "tables" / "prediction_log")
    assert len(table) == sent
    assert set(table.request_id) == set(ids)
    assert set(table.client_request_id) == {f"client-{i}" for i in range(30)}
    for column in (
        "ts",
        "date",
        "deployment",
        "revision",
        "variant",
        "role",
        "model_name",
        "model_version",
        "run_id",
        "key",
        "latency_ms",
        "status",
        "output",
        *FEATURES,
    ):
        assert column in table.columns, column  # fmt: skip
    assert set(table.role) == {"primary"} and set(table.status) == {"ok"}
    for row in table.itertuples():
        variant = assign("churn", row.key, {"champion": 90, "challenger": 10})
        assert row.variant == variant and row.output == ANSWER[variant]
        assert row.model_version == {"champion": "1", "challenger": "2"}[variant]
    assert table.run_id.notna().all() and (table.latency_ms > 0).all()
    assert table.ts.dt.tz is not None and (table.date == table.ts.dt.date).all()


def test_requests_scored_in_one_batch_each_keep_their_own_rows_in_the_log(
    cli, store, flowship_home, tmp_path
):
    """Concurrent requests that one predict call scores reach the log as one entry (the
    batch's); every row still has its own request's id, key, variant, answer and inputs."""
    apply(cli, write_spec(tmp_path / "d.yaml", LOGGED))
    server = deployment_server(
        "churn", "--max-batch-wait-ms", "50",  # requests within 50 ms share a predict call
        home=flowship_home, store=store, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    rows = store.data.head(24)[FEATURES].values.tolist()
    answers = {}

    def send(i: int) -> None:
        response = httpx.post(
            server.url + "/invocations",
            json={"columns": ["customer_id", *FEATURES], "data": [[1000 + i, *rows[i]]]},
            headers={"X-Request-ID": f"client-{i}"},
        )
        assert response.status_code == 200, response.text
        answers[i] = (response.headers["x-flowship-request-id"], response.json()["predictions"])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    scrape = httpx.get(server.url + "/metrics").text
    calls = metric(scrape, "flowship_batch_size_rows_count")
    assert calls is not None and calls < len(rows)  # some requests were scored together
    assert server.stop() in (0, -15)
    table = read_log(flowship_home / "tables" / "prediction_log").set_index("client_request_id")
    assert len(table) == len(rows)
    for i, (request_id, predictions) in answers.items():
        row = table.loc[f"client-{i}"]
        variant = assign("churn", str(1000 + i), {"champion": 90, "challenger": 10})
        assert (row.request_id, row.key, row.variant) == (request_id, str(1000 + i), variant)
        assert [row.output] == predictions == [ANSWER[variant]]
        assert [row[f] for f in FEATURES] == rows[i]


def test_monitor_drift_reads_the_log_as_it_is(cli, served, store, flowship_home, tmp_path):
    import json

    for i in range(8):
        customers = list(range(i * 10, i * 10 + 10))
        assert httpx.post(served.url + "/invocations", json=body(store, customers)).is_success
    served.stop()
    baseline = tmp_path / "baseline.parquet"
    store.data[FEATURES].to_parquet(baseline)
    result = cli("monitor", "drift", "--current", "table:prediction_log", "--baseline", baseline,
                 "--columns", ",".join(FEATURES), "--min-rows", "10", "--json", "-")  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["n_current"] == 80
    assert sorted(c["name"] for c in report["columns"]) == sorted(FEATURES)


def test_a_traffic_change_under_load_fails_no_request(cli, served, store):
    failures, answers, stop = [], [], threading.Event()

    def load():
        with httpx.Client() as client:
            while not stop.is_set():
                r = client.post(served.url + "/invocations", json=body(store, [1, 2, 3, 4]))
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    answers.append((revision_of(r), r.json()["predictions"]))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        assert cli("traffic", "churn", "champion=0", "challenger=100").exit_code == 0
        deadline = time.monotonic() + 30
        while not answers or answers[-1][0] != "2":
            assert time.monotonic() < deadline, served.logs()[-2000:]
            time.sleep(0.1)
        time.sleep(0.5)
        assert cli("traffic", "churn", "--undo").exit_code == 0
        while answers[-1][0] != "3":
            assert time.monotonic() < deadline, served.logs()[-2000:]
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    by_revision = {rev: preds for rev, preds in answers}
    assert by_revision["2"] == [2.0, 2.0, 2.0, 2.0]  # blue-green: everyone on the challenger
    assert by_revision["3"] == [
        ANSWER[assign("churn", str(c), {"champion": 90, "challenger": 10})] for c in (1, 2, 3, 4)
    ]


def test_a_variant_that_fails_to_load_keeps_the_previous_revision(cli, served, store, tmp_path):
    broken = write_spec(
        tmp_path / "broken.yaml", SPLIT + "  bad: {ref: 'models:/unloadable/1', weight: 0}\n" + LOG
    )
    apply(cli, broken)
    deadline = time.monotonic() + 60
    while "failed to load" not in (
        httpx.get(served.url + "/flowship").json()["deployment"]["last_error"] or ""
    ):
        assert time.monotonic() < deadline, served.logs()[-3000:]
        time.sleep(0.2)
    info = httpx.get(served.url + "/flowship").json()["deployment"]
    assert info["revision"] == 1
    assert "revision 2: variant 'bad' (models:/unloadable/1) failed to load" in info["last_error"]
    response = httpx.post(served.url + "/invocations", json=body(store, [1, 2]))
    assert response.status_code == 200 and revision_of(response) == "1"
    metrics = httpx.get(served.url + "/metrics").text
    failures = "flowship_deployment_load_failures_total"
    assert metric(metrics, failures, deployment="churn", revision="2")
    assert "still serving revision 1" in served.logs()


FIFTY_FIFTY = """
name: churn
model: churn
key: customer_id
variants:
  champion:   {ref: "@production", weight: 50}
  challenger: {ref: "CHALLENGER", weight: 50}
"""


def test_a_failed_variant_is_named_in_the_error_and_its_metrics(
    cli, store, flowship_home, tmp_path
):
    """A request the challenger fails says so (headers, request metrics): it used to be
    labelled with the heaviest variant's model, as if the champion had failed."""
    spec = FIFTY_FIFTY.replace("CHALLENGER", "models:/raises/1")
    apply(cli, write_spec(tmp_path / "d.yaml", spec))
    server = deployment_server(
        "churn", home=flowship_home, store=store, log=tmp_path / "server.log"
    ).start()
    weights = {"champion": 50, "challenger": 50}
    try:
        answers = {
            c: httpx.post(server.url + "/invocations", json=body(store, [c])) for c in range(40)
        }
        data = store.data.head(1)
        other = next(c for c in range(100, 200) if assign("churn", str(c), weights) == "challenger")
        v2 = httpx.post(server.url + "/v2/models/churn/infer", json={"inputs": [
            {"name": "customer_id", "datatype": "INT64", "shape": [1], "data": [other]},
            *[{"name": f, "datatype": "FP64" if f != "plan" else "INT64", "shape": [1],
               "data": data[f].tolist()} for f in FEATURES],
        ]})  # fmt: skip
        both = httpx.post(server.url + "/invocations", json=body(store, [1, 2, 3, 4, 5, 6]))
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    failed = [c for c in answers if assign("churn", str(c), weights) == "challenger"]
    # Rows for both variants, the challenger's failing: the request fails, naming it.
    assert {assign("churn", str(c), weights) for c in range(1, 7)} == set(weights)
    assert both.status_code == 500 and both.headers["x-flowship-variant"] == "challenger"
    assert 0 < len(failed) < 40
    for c, response in answers.items():
        variant, model, status = ("challenger", "raises", 500) if c in failed else (
            "champion", "churn", 200)  # fmt: skip
        assert response.status_code == status, response.text
        assert response.headers["x-flowship-variant"] == variant
        assert response.headers["x-flowship-model-name"] == model
        assert revision_of(response) == "1"
    assert v2.status_code == 500 and v2.headers["x-flowship-model-name"] == "raises"
    errors = "flowship_request_errors_total"
    assert metric(metrics, errors, model="raises", protocol="mlflow") == len(failed) + 1
    assert metric(metrics, errors, model="raises", protocol="v2") == 1
    assert metric(metrics, errors, model="churn") is None
    duration = "flowship_request_duration_seconds_count"
    assert metric(metrics, duration, model="raises") == len(failed) + 2
    assert metric(metrics, duration, model="churn") == 40 - len(failed)


def test_a_variant_with_many_more_inputs_is_not_refused(cli, store, flowship_home, tmp_path):
    """The column cap (a signature's columns + max_extra_columns) comes from the widest
    variant: it used to come from the heaviest, so that a challenger reading 80 more
    features than the champion had every request for it refused."""
    spec = FIFTY_FIFTY.replace("CHALLENGER", "models:/wide/1")
    apply(cli, write_spec(tmp_path / "d.yaml", spec))
    server = deployment_server(
        "churn", "--extra-columns", "ignore",
        home=flowship_home, store=store, log=tmp_path / "server.log",
    ).start()  # fmt: skip
    customers = list(range(20))
    request = body(store, customers)
    request["columns"] += [f"w{i}" for i in range(WIDE_EXTRA)]
    request["data"] = [row + [0.5] * WIDE_EXTRA for row in request["data"]]
    try:
        response = httpx.post(server.url + "/invocations", json=request)
        flooded = body(store, [1])
        flooded["columns"] += [f"x{i}" for i in range(WIDE_EXTRA + 100)]
        flooded["data"][0] += [0.0] * (WIDE_EXTRA + 100)
        refused = httpx.post(server.url + "/invocations", json=flooded)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    weights = {"champion": 50, "challenger": 50}
    answers = {"champion": 1.0, "challenger": 9.0}
    expected = [answers[assign("churn", str(c), weights)] for c in customers]
    assert response.json()["predictions"] == expected and set(expected) == {1.0, 9.0}
    # The cap is still there: the widest variant's 84 columns + 64.
    assert refused.status_code == 400
    assert "more than the server's limit of 148" in refused.json()["message"]
