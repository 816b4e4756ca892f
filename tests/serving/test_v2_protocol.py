"""V2 wire types and tensor codecs: encode/decode pairs with round-trip tests."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from flowship.errors import InvalidInput
from flowship.serving import v2_protocol as v2

ARRAYS = [
    np.array([1.5, -2.25, 3.0]),
    np.array([[1, 2], [3, 4]], dtype=np.int64),
    np.array([True, False]),
    np.array([1, 2, 3], dtype=np.int32),
    np.array([[0.5], [0.25]], dtype=np.float32),
    np.array(["a", "bé"], dtype=object),
    np.array([], dtype=np.float64),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}-{a.shape}")
def test_json_tensor_round_trip(array):
    out = v2.encode_tensor("t", array)
    wire = orjson.loads(orjson.dumps(out.model_dump()))
    back = v2.decode_tensor(v2.RequestInput.model_validate(wire))
    assert back.shape == array.shape
    assert back.dtype == array.dtype or out.datatype == "BYTES"
    assert back.tolist() == array.tolist()


@pytest.mark.parametrize("array", ARRAYS[:5], ids=lambda a: f"{a.dtype}-{a.shape}")
def test_binary_tensor_round_trip(array):
    datatype = v2.datatype_of(array.dtype)
    tensor = v2.RequestInput(name="t", shape=list(array.shape), datatype=datatype)
    back = v2.decode_tensor(tensor, np.ascontiguousarray(array).tobytes())
    np.testing.assert_array_equal(back, array)


def test_binary_bytes_round_trip():
    values = np.array(["x", "", "héllo"], dtype=object)
    tensor = v2.RequestInput(name="s", shape=[3], datatype="BYTES")
    assert v2.decode_tensor(tensor, v2.serialize_bytes(values)).tolist() == values.tolist()
    with pytest.raises(InvalidInput, match="runs past"):
        v2.decode_tensor(tensor, b"\x09\x00\x00\x00ab")


def test_inference_request_and_response_models_round_trip():
    request = {
        "id": "42",
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]}],
        "outputs": [{"name": "prediction"}],
    }
    parsed, tail = v2.parse_request(orjson.dumps(request), None)
    assert parsed.model_dump(exclude_none=True) == request and tail == b""
    response = v2.InferenceResponse(
        model_name="m", model_version="3", id="42",
        outputs=[v2.encode_tensor("prediction", np.array([1, 0]))],
    )  # fmt: skip
    again = v2.InferenceResponse.model_validate_json(response.model_dump_json())
    assert again == response


def test_binary_body_is_split_at_the_header_length():
    head = orjson.dumps(
        {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64",
                     "parameters": {"binary_data_size": 16}}]}
    )  # fmt: skip
    tail = np.array([1.0, 2.0]).tobytes()
    parsed, rest = v2.parse_request(head + tail, len(head))
    columns, rows = v2.request_columns(parsed, rest, ["a"])
    assert rows == 2 and columns["a"].tolist() == [1.0, 2.0]


def test_request_columns_shapes():
    parsed, _ = v2.parse_request(orjson.dumps({"inputs": [
        {"name": "a", "shape": [2, 1], "datatype": "INT64", "data": [[1], [2]]},
        {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ]}), None)  # fmt: skip
    columns, rows = v2.request_columns(parsed, b"", ["a", "b"])
    assert rows == 2 and columns["a"].tolist() == [1, 2] and columns["b"].dtype == np.bool_
    uneven, _ = v2.parse_request(orjson.dumps({"inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
    ]}), None)  # fmt: skip
    with pytest.raises(InvalidInput, match="has 1 rows"):
        v2.request_columns(uneven, b"", ["a", "b"])


def test_response_outputs_one_tensor_per_output_column():
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    outputs = v2.response_outputs(proba, ["p_0", "p_1"], None)
    assert [(o.name, o.shape, o.data) for o in outputs] == [
        ("p_0", [2], [0.2, 0.6]), ("p_1", [2], [0.8, 0.4]),
    ]  # fmt: skip
    picked = v2.response_outputs(proba, ["p_0", "p_1"], [v2.RequestOutput(name="p_1")])
    assert [o.name for o in picked] == ["p_1"]


def test_hostile_nesting_does_not_recurse():
    data: list = [1.0]
    for _ in range(50_000):
        data = [data]
    tensor = v2.RequestInput(name="a", shape=[1], datatype="FP64", data=data)
    assert v2.decode_tensor(tensor).tolist() == [1.0]


def test_binary_bytes_must_be_utf8():
    tensor = v2.RequestInput(name="s", shape=[1], datatype="BYTES", data=None)
    with pytest.raises(InvalidInput, match="BYTES element 0 is not valid UTF-8"):
        v2.decode_tensor(tensor, b"\x02\x00\x00\x00\xff\xfe")
    assert v2.decode_tensor(tensor, v2.serialize_bytes(np.array(["é"], dtype=object))).tolist() == [
        "é"
    ]


def test_integer_tensors_refuse_fractions_and_out_of_range_values():
    for data, needle in [([1.5], "1.5 is not an integer"), ([True], "True is not an integer")]:
        tensor = v2.RequestInput(name="n", shape=[1], datatype="INT64", data=data)
        with pytest.raises(InvalidInput, match=needle):
            v2.decode_tensor(tensor)
    too_big = v2.RequestInput(name="n", shape=[1], datatype="INT8", data=[300])
    with pytest.raises(InvalidInput, match="bad value"):
        v2.decode_tensor(too_big)


def test_a_datatype_the_signature_cannot_take():
    parsed, _ = v2.parse_request(
        orjson.dumps({"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}]}),
        None,
    )
    with pytest.raises(InvalidInput, match="FP64, which its column of type long cannot take"):
        v2.request_columns(parsed, b"", ["a"], input_types={"a": "long"})
    columns, _ = v2.request_columns(parsed, b"", ["a"], input_types={"a": "double"})
    assert columns["a"].tolist() == [1.0]


def test_a_shape_whose_product_overflows_is_refused_before_decoding():
    from flowship.serving.errors import DecodedTooLarge
    from flowship.serving.limits import RequestLimits

    limits = RequestLimits(max_columns=10, max_cells=1000)
    tensor = v2.RequestInput(name="a", shape=[2**40, 2**40], datatype="FP64", data=[1.0])
    with pytest.raises(DecodedTooLarge, match="more than the server's limit of 1000"):
        v2.decode_tensor(tensor, None, limits)
    with pytest.raises(DecodedTooLarge, match="declares 1208925819614629174706176 rows"):
        v2.decode_tensor(tensor)
