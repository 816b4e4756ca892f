"""The Open Inference Protocol (KServe V2) REST wire types and tensor codecs.

The pydantic models mirror the spec one to one (names, optional fields); the codecs
are encode/decode pairs between a numpy array and a tensor, including Triton's binary
tensor extension for requests (``Inference-Header-Content-Length``), which stock
clients such as ``tritonclient.http`` use by default. Responses are plain JSON, which
every client reads.

A model's columns map to tensors one to one (a tensor per signature column, shape
``[n]`` or ``[n, 1]``); a single ``[n, k]`` tensor is also accepted and split into the
k signature columns in order.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowship.errors import InvalidInput
from flowship.predict.types import V2_DATATYPES
from flowship.serving.limits import UNLIMITED, RequestLimits

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}  # fmt: skip

MLFLOW_TO_V2 = V2_DATATYPES  # the MLflow type table's own V2 column (predict.types)

_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_NUMBERS = _INTEGERS | {"FP16", "FP32", "FP64"}
# Tensor datatypes that can feed a column of each MLflow type without losing meaning.
ACCEPTED_DATATYPES = {
    "double": _NUMBERS, "float": _NUMBERS, "long": _INTEGERS, "integer": _INTEGERS,
    "boolean": frozenset({"BOOL"}), "string": frozenset({"BYTES"}),
    "binary": frozenset({"BYTES"}),
}  # fmt: skip


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MetadataServerResponse(_Wire):
    name: str
    version: str
    extensions: list[str] = []


class MetadataTensor(_Wire):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: dict[str, Any] | None = None


class MetadataModelResponse(_Wire):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = []
    outputs: list[MetadataTensor] = []
    parameters: dict[str, Any] | None = None


class RequestInput(_Wire):
    name: str
    shape: list[int] = Field(max_length=8)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(_Wire):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Wire):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Wire):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(_Wire):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class InferenceErrorResponse(_Wire):
    error: str


# ------------------------------------------------------------------ request body


def parse_request(body: bytes, json_length: int | None) -> tuple[InferenceRequest, bytes]:
    """Split a (possibly binary-extended) body into the request and its binary tail."""
    if json_length is not None:
        if not 0 < json_length <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {json_length} but the body has "
                f"{len(body)} bytes.",
                "Set it to the byte length of the JSON part of the body.",
            )
        body, tail = body[:json_length], body[json_length:]
    else:
        tail = b""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"The request body is not valid JSON: {exc}.",
            'Send {"inputs": [{"name": ..., "shape": [n], "datatype": "FP64", "data": [...]}]}.',
        ) from None
    try:
        return InferenceRequest.model_validate(raw), tail
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(
            f"Invalid inference request: {where}: {first['msg']}.",
            "See the Open Inference Protocol: inputs need name, shape, datatype and data.",
        ) from None


# ------------------------------------------------------------------ tensor codecs


def decode_tensor(
    tensor: RequestInput, binary: bytes | None = None, limits: RequestLimits = UNLIMITED
) -> np.ndarray:
    """A request tensor as a numpy array of its shape and datatype."""
    if any(d < 0 for d in tensor.shape):
        raise InvalidInput(f"Input {tensor.name!r} has a negative dimension: {tensor.shape}.")
    count = math.prod(tensor.shape)  # a Python int: no overflow, however large the dims
    limits.check_cells(count, 1, f"Input {tensor.name!r} of shape {tensor.shape}")
    dtype = NUMPY_DTYPES[tensor.datatype]
    if binary is not None:
        if tensor.datatype == "BYTES":
            flat = _deserialize_bytes(binary, tensor.name)
        else:
            itemsize = np.dtype(dtype).itemsize
            if len(binary) != count * itemsize:
                raise InvalidInput(
                    f"Input {tensor.name!r}: {len(binary)} binary bytes do not hold "
                    f"{count} {tensor.datatype} values of shape {tensor.shape}."
                )
            flat = np.frombuffer(binary, dtype=dtype)
    else:
        if tensor.data is None:
            raise InvalidInput(f"Input {tensor.name!r} has no data.", "Add a 'data' list.")
        flat = _flatten(tensor.data, tensor.name)
        try:
            if tensor.datatype == "BYTES":
                flat = np.array([_text(v, tensor.name) for v in flat], dtype=object)
            elif tensor.datatype == "BOOL":
                if not all(isinstance(v, bool) for v in flat):
                    raise ValueError("BOOL data must be true or false")
                flat = np.array(flat, dtype=np.bool_)
            else:
                # numpy would truncate 1.5 to 1 in an integer tensor without a word
                ok = _is_integer if tensor.datatype in _INTEGERS else _is_number
                if not all(ok(v) for v in flat):
                    bad = next(v for v in flat if not ok(v))
                    raise ValueError(
                        f"{bad!r} is not {'an integer' if ok is _is_integer else 'a number'}"
                    )
                flat = np.array(flat, dtype=dtype)
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(
                f"Input {tensor.name!r} ({tensor.datatype}) has a bad value: {exc}."
            ) from None
    if flat.size != count:
        raise InvalidInput(
            f"Input {tensor.name!r} has {flat.size} values but its shape {tensor.shape} "
            f"needs {count}.",
            "Make 'shape' match the number of values in 'data'.",
        )
    return flat.reshape(tensor.shape)


def encode_tensor(name: str, array: np.ndarray) -> ResponseOutput:
    """A numpy array as a JSON response tensor (row-major flat data)."""
    array = np.asarray(array)
    datatype = datatype_of(array.dtype)
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
    else:
        data = array.ravel().tolist()
    return ResponseOutput(name=name, shape=list(array.shape), datatype=datatype, data=data)


def datatype_of(dtype: np.dtype) -> str:
    for name, candidate in NUMPY_DTYPES.items():
        if name != "BYTES" and np.dtype(candidate) == dtype:
            return name
    return "BYTES"  # strings and objects (class labels)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative: hostile nesting must not hit the recursion limit
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _deserialize_bytes(buffer: bytes, name: str) -> np.ndarray:
    values, offset = [], 0
    while offset < len(buffer):
        if offset + 4 > len(buffer):
            raise InvalidInput(f"Input {name!r}: truncated BYTES length prefix.")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > len(buffer):
            raise InvalidInput(f"Input {name!r}: a BYTES element runs past the body.")
        try:
            values.append(buffer[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"Input {name!r}: BYTES element {len(values)} is not valid UTF-8 ({exc.reason} "
                f"at byte {exc.start}).",
                "Send text encoded as UTF-8.",
            ) from None
        offset += length
    return np.array(values, dtype=object)


def serialize_bytes(values: np.ndarray) -> bytes:
    """Triton's binary BYTES layout (4-byte little-endian length, then the bytes)."""
    out = bytearray()
    for value in values.ravel().tolist():
        raw = value if isinstance(value, bytes) else str(value).encode()
        out += struct.pack("<I", len(raw)) + raw
    return bytes(out)


# ------------------------------------------------------------------ tensors <-> columns


def request_columns(
    request: InferenceRequest,
    tail: bytes,
    input_names: list[str],
    *,
    input_types: dict[str, str] | None = None,
    limits: RequestLimits = UNLIMITED,
) -> tuple[dict[str, Any], int]:
    """The request's tensors as model columns, and the row count. ``input_types`` (column
    name -> MLflow type) refuses a tensor whose datatype its column cannot take."""
    limits.check_columns(len(request.inputs), "The request")
    types = input_types or {}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        accepted = ACCEPTED_DATATYPES.get(types.get(tensor.name, ""))
        if accepted is not None and tensor.datatype not in accepted:
            raise InvalidInput(
                f"Input {tensor.name!r} has datatype {tensor.datatype}, which its column of "
                f"type {types[tensor.name]} cannot take.",
                f"Send it as {MLFLOW_TO_V2[types[tensor.name]]}.",
            )
        size = (tensor.parameters or {}).get("binary_data_size")
        binary = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise InvalidInput(
                    f"Input {tensor.name!r}: binary_data_size {size!r} does not fit the "
                    f"{len(tail)} binary bytes of the body."
                )
            binary, offset = tail[offset : offset + size], offset + size
        if tensor.name in arrays:
            raise InvalidInput(f"Input {tensor.name!r} appears more than once.")
        arrays[tensor.name] = decode_tensor(tensor, binary, limits)
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        if name not in input_names and array.ndim == 2 and array.shape[1] == len(input_names):
            return {n: array[:, i] for i, n in enumerate(input_names)}, array.shape[0]
    columns: dict[str, Any] = {}
    rows: int | None = None
    for name, array in arrays.items():
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InvalidInput(
                f"Input {name!r} has shape {list(array.shape)}; a column needs shape [n] "
                "or [n, 1].",
                f"Send one tensor per input ({', '.join(input_names[:10])}), or one [n, "
                f"{len(input_names)}] tensor with the columns in that order.",
            )
        if rows is not None and array.shape[0] != rows:
            raise InvalidInput(
                f"Input {name!r} has {array.shape[0]} rows but the first input has {rows}."
            )
        rows = array.shape[0]
        columns[name] = array
    return columns, rows or 0


def response_outputs(
    predictions: np.ndarray, output_names: list[str], requested: list[RequestOutput] | None
) -> list[ResponseOutput]:
    """Predictions as response tensors: one ``[n]`` tensor per output column."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 2 and predictions.shape[1] == len(output_names):
        tensors = {n: predictions[:, i] for i, n in enumerate(output_names)}
    else:
        tensors = {output_names[0] if output_names else "prediction": predictions}
    if requested:
        unknown = [o.name for o in requested if o.name not in tensors]
        if unknown:
            raise InvalidInput(
                f"Unknown output {unknown[0]!r}.", f"This model's outputs: {', '.join(tensors)}."
            )
        tensors = {o.name: tensors[o.name] for o in requested}
    return [encode_tensor(name, np.ascontiguousarray(a)) for name, a in tensors.items()]
