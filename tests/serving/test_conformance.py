"""Drop-in check: the same requests against ``mlflow models serve`` and ``flowship serve``
for the same model version give the same status codes and bodies.

Deliberate differences are listed in DIFFERENT with both statuses, so that a change on
either side shows up here.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from tests.serving._server import Server, free_port, server_env
from tests.serving.conftest import FEATURES

JSON = "application/json"
ROWS = [[0.5, -1.0, 0.25, 2], [-0.3, 0.8, 1.5, 0]]
RECORDS = [dict(zip(FEATURES, row, strict=True)) for row in ROWS]


def split(columns=FEATURES, rows=ROWS):
    return {"dataframe_split": {"columns": columns, "data": rows}}


def frame_csv() -> bytes:
    import pandas as pd

    return pd.DataFrame(ROWS, columns=FEATURES).to_csv(index=False).encode()


def frame_parquet() -> bytes:
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(ROWS, columns=FEATURES).to_parquet(buffer)
    return buffer.getvalue()


SAME = [
    ("split", JSON, split()),
    (
        "split with index",
        JSON,
        {"dataframe_split": {"columns": FEATURES, "data": ROWS, "index": [7, 8]}},
    ),  # fmt: skip
    ("records", JSON, {"dataframe_records": RECORDS}),
    ("instances", JSON, {"instances": RECORDS}),
    (
        "inputs columns",
        JSON,
        {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(FEATURES)}},
    ),  # fmt: skip
    ("inputs records", JSON, {"inputs": RECORDS}),
    ("params", JSON, {"inputs": RECORDS, "params": {"threshold": 0.5}}),
    ("charset", "application/json; charset=utf-8", split()),
    ("csv", "text/csv", frame_csv()),
    ("parquet", "application/vnd.apache.parquet", frame_parquet()),
    ("malformed JSON", JSON, b'{"inputs": '),
    ("list body", JSON, b"[1, 2]"),
    ("scalar body", JSON, b"3"),
    ("no format key", JSON, {"data": 1, "foo": 2}),
    ("two format keys", JSON, {"inputs": RECORDS, "instances": RECORDS}),
    ("split not a dict", JSON, {"dataframe_split": [[1, 2]]}),
    ("split extra keys", JSON, {"dataframe_split": {"data": ROWS, "foo": 1}}),
    ("split without columns", JSON, {"dataframe_split": {"data": ROWS}}),
    ("records not a list", JSON, {"dataframe_records": {"a": 1}}),
    ("instances of lists", JSON, {"instances": ROWS}),
    ("missing column", JSON, split(FEATURES[:3], [r[:3] for r in ROWS])),
    ("string in numeric", JSON, split(FEATURES, [["x", 1.0, 1.0, 1]])),
    ("null in required", JSON, split(FEATURES, [[None, 1.0, 1.0, 1]])),
    ("NaN", JSON, b'{"dataframe_split": {"columns": ["age"], "data": [[NaN]]}}'),
    ("empty data", JSON, split(FEATURES, [])),
    ("ragged rows", JSON, split(FEATURES, [[1.0, 2.0]])),
    ("text/plain", "text/plain", b"x"),
    ("latin-1", "application/json; charset=latin-1", split()),
    ("format parameter", "application/json; format=pandas-split", split()),
]

# (case, content type, body, mlflow status, flowship status): deliberate differences.
DIFFERENT = [
    # The seed's (MLflow 1.x) body: MLflow 2+ refuses it, flowship serves it.
    ("seed body", JSON, {"columns": FEATURES, "data": ROWS}, 400, 200),
    # MLflow silently truncates 1.5 in a long column; flowship refuses to change data.
    ("float in long column", JSON, split(FEATURES, [[0.1, 0.2, 0.3, 1.5]]), 200, 400),
    # MLflow silently drops a column its signature does not name (a client's typo goes
    # unnoticed); flowship names it. --extra-columns ignore restores MLflow's behaviour.
    ("extra column", JSON, split([*FEATURES, "id"], [[*r, 1] for r in ROWS]), 200, 400),
    # No Content-Type: MLflow crashes with a 500; flowship says which types it takes.
    ("no content type", None, split(), 500, 415),
]


@pytest.fixture(scope="module")
def both(serving_store, tmp_path_factory):
    home = tmp_path_factory.mktemp("conformance")
    port = free_port()
    env = server_env(home, serving_store.uri)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    mlflow_server = Server(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/churn/1",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, log=home / "mlflow.log", port=port, ready_path="/ping",
    )  # fmt: skip
    flowship_server = Server.flowship(
        "models:/churn/1", home=home, tracking_uri=serving_store.uri, log=home / "flowship.log"
    )
    mlflow_server.start(timeout=120)
    flowship_server.start()
    yield mlflow_server, flowship_server
    flowship_server.stop()
    mlflow_server.stop()


def ask(server: Server, content_type: str | None, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": content_type} if content_type else {}
    return httpx.post(server.url + "/invocations", content=content, headers=headers, timeout=30)


@pytest.mark.slow
def test_same_answers_as_mlflow_models_serve(both):
    mlflow_server, flowship_server = both
    mismatches = []
    for case, content_type, body in SAME:
        theirs = ask(mlflow_server, content_type, body)
        ours = ask(flowship_server, content_type, body)
        if theirs.status_code != ours.status_code:
            mismatches.append((case, theirs.status_code, ours.status_code, theirs.text[:200]))
            continue
        if theirs.status_code == 200:
            if theirs.json() != ours.json():
                mismatches.append((case, theirs.text, ours.text))
        elif theirs.headers["content-type"].startswith(JSON):
            mine = ours.json()
            assert set(mine) == {"error_code", "message"}, case
            assert mine["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE"), case
            assert {"error_code", "message"} <= set(theirs.json()), case
    assert not mismatches, mismatches
    for endpoint in ("/ping", "/health", "/version"):
        theirs = httpx.get(mlflow_server.url + endpoint)
        ours = httpx.get(flowship_server.url + endpoint)
        assert (theirs.status_code, theirs.text) == (ours.status_code, ours.text), endpoint


@pytest.mark.slow
def test_known_differences_still_differ(both):
    mlflow_server, flowship_server = both
    for case, content_type, body, theirs, ours in DIFFERENT:
        assert ask(mlflow_server, content_type, body).status_code == theirs, case
        assert ask(flowship_server, content_type, body).status_code == ours, case
