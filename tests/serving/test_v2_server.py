"""The Open Inference Protocol (V2) against a real server, with a stock client."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.conftest import FEATURES


def client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.url.removeprefix("http://"))


def triton_inputs(data, *, binary: bool) -> list:
    inputs = []
    for name in FEATURES:
        values = data[name].to_numpy()
        values = values.astype(np.int64 if name == "plan" else np.float64)
        tensor = triton.InferInput(name, list(values.shape), "INT64" if name == "plan" else "FP64")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_health_and_metadata(server):
    c = client(server)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("churn") and c.is_model_ready("churn", "1")
    assert not c.is_model_ready("churn", "7") and not c.is_model_ready("other")
    meta = c.get_model_metadata("churn")
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        ("age", "FP64"), ("tenure", "FP64"), ("recency", "FP64"), ("plan", "INT64"),
    ]  # fmt: skip
    assert meta["outputs"][0]["name"] == "prediction"
    assert meta["parameters"]["backend"] == "linear"
    assert c.get_server_metadata()["name"] == "flowship"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer(server, serving_store, binary):
    data = serving_store.data.head(7)
    result = client(server).infer("churn", triton_inputs(data, binary=binary), request_id="r1")
    assert result.get_response()["id"] == "r1"
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_array_equal(result.as_numpy("prediction"), serving_store.expected["1"][:7])


def test_one_matrix_tensor_is_split_into_signature_columns(server, serving_store):
    data = serving_store.data.head(3)
    body = {
        "inputs": [
            {"name": "input-0", "shape": [3, 4], "datatype": "FP64",
             "data": data[FEATURES].to_numpy(float).ravel().tolist()}
        ]
    }  # fmt: skip
    response = httpx.post(server.url + "/v2/models/churn/versions/1/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    assert out["shape"] == [3] and out["data"] == serving_store.expected["1"][:3].tolist()
    assert response.headers["x-flowship-model-version"] == "1"


def _infer(server, body, name="churn") -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.url}/v2/models/{name}/infer", content=content)


def _tensor(name="age", shape=(1,), datatype="FP64", data=(0.5,)):
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}


GOOD = [_tensor(n, data=[1.0]) for n in FEATURES[:3]] + [
    _tensor("plan", datatype="INT64", data=[1])
]
BAD_V2 = [
    ("malformed JSON", b'{"inputs": [', 400, "not valid JSON"),
    ("no inputs", {"inputs": []}, 400, "inputs"),
    ("unknown datatype", {"inputs": [_tensor(datatype="FP99")]}, 400, "datatype"),
    ("shape mismatch", {"inputs": [_tensor(shape=(3,))]}, 400, "needs 3"),
    ("string in FP64", {"inputs": [_tensor(data=["x"])]}, 400, "not a number"),
    ("missing column", {"inputs": GOOD[:3]}, 400, "'plan'"),
    ("unknown output", {"inputs": GOOD, "outputs": [{"name": "nope"}]}, 400, "Unknown output"),
    ("3-D tensor", {"inputs": [_tensor(shape=(1, 1, 1))]}, 400, "shape"),
    ("negative dim", {"inputs": [_tensor(shape=(-1,))]}, 400, "negative"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), BAD_V2, ids=[b[0] for b in BAD_V2])
def test_v2_bad_input(server, case, body, status, needle):
    response = _infer(server, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert needle in response.json()["error"]


def test_v2_unknown_model_and_version_are_404(server):
    assert _infer(server, {"inputs": GOOD}, name="other").status_code == 404
    response = httpx.post(server.url + "/v2/models/churn/versions/9/infer", json={"inputs": GOOD})
    assert response.status_code == 404 and "version '9'" in response.json()["error"]
    assert httpx.get(server.url + "/v2/models/other").status_code == 404


def test_v2_binary_header_lies_are_400(server):
    body = b'{"inputs": []}'
    response = httpx.post(
        server.url + "/v2/models/churn/infer",
        content=body,
        headers={"Inference-Header-Content-Length": "9999"},
    )
    assert response.status_code == 400 and "Inference-Header-Content-Length" in response.text
    tensor = {**_tensor(), "parameters": {"binary_data_size": 800}}
    tensor.pop("data")
    head = orjson.dumps({"inputs": [tensor]})
    response = httpx.post(
        server.url + "/v2/models/churn/infer",
        content=head + b"\0" * 8,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert response.status_code == 400 and "binary_data_size" in response.text


def test_tritonclient_sees_errors_as_exceptions(server):
    bad = triton.InferInput("age", [1], "FP64")
    bad.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException, match="plan"):
        client(server).infer("churn", [bad])
