"""The MLflow scoring protocol, health, metrics and bad input against a real server."""

from __future__ import annotations

import io
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pytest

from tests.serving._server import metric
from tests.serving.conftest import FEATURES, split_body

JSON = {"Content-Type": "application/json"}


def post(server, body, headers=JSON, path="/invocations") -> httpx.Response:
    content = body if isinstance(body, bytes | str) else orjson.dumps(body)
    return httpx.post(server.url + path, content=content, headers=headers, timeout=30)


def assert_healthy(server) -> None:
    assert httpx.get(server.url + "/ping", timeout=5).status_code == 200
    row = {"inputs": {"age": [0.1], "tenure": [0.2], "recency": [0.3], "plan": [1]}}
    assert post(server, row).status_code == 200


# ------------------------------------------------------------------ accepted formats


def test_every_mlflow_json_format_gives_the_same_predictions(server, serving_store):
    data = serving_store.data.head(5)
    want = serving_store.expected["1"][:5].tolist()
    records = data.to_dict(orient="records")
    bodies = [
        split_body(data),
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: data[c].tolist() for c in data.columns}},
        {"inputs": records},
        {"inputs": {c: data[c].tolist() for c in data.columns}, "params": {"x": 1}},
        {"columns": list(data.columns), "data": data.values.tolist()},  # the seed's body
    ]
    for body in bodies:
        response = post(server, body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"predictions": want}
        assert response.headers["x-flowship-model-version"] == "1"
        assert response.headers["x-flowship-model-name"] == "churn"


def test_csv_and_parquet(server, serving_store):
    data = serving_store.data.head(4)
    want = {"predictions": serving_store.expected["1"][:4].tolist()}
    csv = post(server, data.to_csv(index=False), {"Content-Type": "text/csv"})
    assert csv.status_code == 200 and csv.json() == want
    buffer = io.BytesIO()
    data.to_parquet(buffer)
    parquet = post(server, buffer.getvalue(), {"Content-Type": "application/vnd.apache.parquet"})
    assert parquet.status_code == 200 and parquet.json() == want


def test_ping_health_version_and_info(server):
    for path in ("/ping", "/health"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200 and response.text == "\n"
    assert httpx.get(server.url + "/version").text[0].isdigit()
    info = httpx.get(server.url + "/flowship").json()
    assert info["ready"] is True and info["model"]["backend"] == "linear"


def test_concurrent_requests_each_get_their_own_rows(server, serving_store):
    data, want = serving_store.data, serving_store.expected["1"]

    def one(i: int) -> tuple[int, list]:
        response = post(server, split_body(data.iloc[[i]]))
        return i, response.json()["predictions"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(len(data))))
    for i, predictions in results:
        assert predictions == [want[i]]


def test_metrics_are_prometheus_text_labelled_by_model(server):
    model = {"model": "churn", "version": "1", "backend": "linear"}
    before = httpx.get(server.url + "/metrics").text
    post(server, {"inputs": {"age": [1.0], "tenure": [2.0], "recency": [3.0], "plan": [1]}})
    post(server, b"{", JSON)
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE flowship_request_duration_seconds histogram" in text

    def grew(name: str, **labels: str) -> float:
        return (metric(text, name, **labels) or 0) - (metric(before, name, **labels) or 0)

    ok = {**model, "protocol": "mlflow", "status": "200"}
    assert grew("flowship_requests_total", **ok) == 1
    assert grew("flowship_requests_total", protocol="mlflow", status="400") == 1
    bad = {**model, "protocol": "mlflow", "error": "InvalidInput"}
    assert grew("flowship_request_errors_total", **bad) == 1
    assert "flowship_batch_size_rows_bucket{" in text
    info = {**model, "ref": "models:/churn@production"}
    assert metric(text, "flowship_model_info", **info) == 1


# ------------------------------------------------------------------ bad input

ROW = [0.1, 0.2, 0.3, 1]


def split(columns, rows):
    return {"dataframe_split": {"columns": columns, "data": rows}}


BAD = [
    ("malformed JSON", b'{"inputs":', 400, "not valid JSON"),
    ("a list body", b"[1, 2]", 400, "Received a list"),
    ("no format key", {"foo": 1}, 400, "exactly one of the input fields"),
    ("two format keys", {"inputs": {}, "instances": []}, 400, "exactly one of the input fields"),
    ("missing column", split(FEATURES[:3], [ROW[:3]]), 400, "Missing required column(s) 'plan'"),
    ("extra column", split([*FEATURES, "zip"], [[*ROW, 9]]), 400, "'zip'"),
    ("string in numeric", split(FEATURES, [["old", 0.2, 0.3, 1]]), 400, "Column 'age' expects"),
    ("float in long", split(FEATURES, [[0.1, 0.2, 0.3, 1.5]]), 400, "Column 'plan'"),
    ("null in required", split(FEATURES, [[None, 0.2, 0.3, 1]]), 400, "missing value"),
    ("NaN literal", b'{"inputs": {"age": [NaN]}}', 400, "NaN and Infinity are not JSON"),
    ("Infinity literal", b'{"inputs": {"age": [Infinity]}}', 400, "NaN and Infinity"),
    ("huge number", b'{"inputs": {"age": [1e999]}}', 400, ""),
    ("empty data", split(FEATURES, []), 400, "no rows"),
    ("ragged row", split(FEATURES, [ROW[:2]]), 400, "has 2 values but there are 4 columns"),
    ("records not a list", {"dataframe_records": {"a": 1}}, 400, "must be a list of records"),
    ("unequal inputs", {"inputs": {"age": [1, 2], "tenure": [1]}}, 400, "has 1 values"),
    ("nested values", {"inputs": {c: [[1]] for c in FEATURES}}, 400, "'age'"),
    ("params not object", {"inputs": {"age": [1]}, "params": 3}, 400, "'params'"),
    ("duplicate columns", split(["age", "age"], [[1, 2]]), 400, "more than once"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_4xx(server, case, body, status, needle):
    response = post(server, body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error_code", "message"}
    assert payload["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert needle in payload["message"]
    assert "Traceback" not in payload["message"]


def test_deeply_nested_json_is_rejected(server):
    body = b'{"inputs": {"age": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = post(server, body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    assert_healthy(server)


def test_thousands_of_columns_get_a_short_message(server):
    columns = [f"c{i}" for i in range(5000)]
    response = post(server, split(columns, [[1.0] * 5000]))
    assert response.status_code == 400
    assert len(response.text) < 3000
    assert "names 5000 columns, more than the server's limit of 68" in response.json()["message"]
    assert_healthy(server)


@pytest.mark.parametrize(
    ("content_type", "needle"),
    [
        ("text/plain", "only supports the following content types"),
        ("application/json; charset=latin-1", "only supports UTF-8"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters"),
        (None, "no Content-Type"),
    ],
)
def test_wrong_content_type_is_415(server, content_type, needle):
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(server.url + "/invocations", content=b"{}", headers=headers)
    assert response.status_code == 415
    assert needle in response.json()["message"]


def test_bad_csv_is_400(server):
    response = post(server, b"age,tenure\n1,2,3,4,5\n\x00", {"Content-Type": "text/csv"})
    assert response.status_code == 400
    response = post(server, b"not parquet", {"Content-Type": "application/vnd.apache.parquet"})
    assert response.status_code == 400 and "Parquet" in response.json()["message"]


def test_a_50_mb_body_gets_413_without_being_read(server):
    """The server answers from Content-Length alone; the client has sent 64 KiB of 50 MB."""
    size = 50 * 1024 * 1024
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
            + b"[" * 65536
        )
        answer = b""
        while b"limit" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        answer = answer.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "larger than the server's limit" in answer
    assert time.monotonic() - started < 5
    assert_healthy(server)


def test_a_chunked_body_over_the_limit_gets_413(server):
    def chunks():
        for _ in range(40):
            yield b" " * 65536  # 2.5 MiB in total, over the 1 MiB limit

    response = httpx.post(server.url + "/invocations", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert_healthy(server)


def test_unknown_paths_and_methods(server):
    assert httpx.get(server.url + "/nope").status_code == 404
    assert httpx.get(server.url + "/invocations").status_code == 405


def test_large_batch_in_one_request(server, serving_store):
    data = serving_store.data
    big = data.sample(5000, replace=True, random_state=0)
    response = post(server, split_body(big))
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 5000
    index = big.index.to_numpy()
    assert response.json()["predictions"] == np.asarray(serving_store.expected["1"])[index].tolist()
