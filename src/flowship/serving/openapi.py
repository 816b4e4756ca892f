"""The OpenAPI 3.0 document of the REST surface (``GET /openapi.json``): both protocols,
with request schemas derived from the served model's signature, so a client generator or
a fuzzer (the test suite runs schemathesis against it) sees the real column names and
types. Before a model is loaded the columns are left open.
"""

from __future__ import annotations

from typing import Any

from flowship.predict.types import INTEGRAL, NUMERIC, RANGES
from flowship.serving import mlflow_protocol as mlflow
from flowship.serving.v2_protocol import MLFLOW_TO_V2, NUMPY_DTYPES

_OTHER_TYPES = {"boolean": "boolean", "string": "string", "binary": "string"}

_MLFLOW_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}
_V2_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_UNTYPED = {"application/json": {}}


def document(predictor: Any, name: str) -> dict[str, Any]:
    columns = list(predictor.input_columns) if predictor is not None else []
    outputs = list(predictor.output_columns) if predictor is not None else []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"flowship serve: {name}",
            "version": str(getattr(predictor, "model_version", "") or "0"),
            "description": "MLflow scoring protocol (/invocations) and the Open Inference "
            "Protocol (/v2). Request schemas follow the served model's signature.",
        },
        "paths": {
            "/invocations": {"post": _invocations(columns)},
            "/ping": {"get": _probe("Ready: the model is loaded and warmed.")},
            "/health": {"get": _probe("Same as /ping.")},
            "/version": {  # the bare version text labelled application/json, as MLflow does
                "get": _get("The MLflow version, as MLflow's server answers.", _UNTYPED)
            },
            "/metrics": {"get": _get("Prometheus text format.", _TEXT)},
            "/flowship": {"get": _get("Ref, readiness and the served model.", _json_obj())},
            "/openapi.json": {"get": _get("This document.", _json_obj())},
            "/v2": {"get": _get("V2 server metadata.", _json_obj())},
            "/v2/health/live": {"get": _get("Live.", _json_obj())},
            "/v2/health/ready": {"get": _probe("Ready.", v2=True)},
            "/v2/models/{name}": {"get": _v2_get("Model metadata.")},
            "/v2/models/{name}/ready": {"get": _v2_get("Model readiness.")},
            "/v2/models/{name}/infer": {"post": _infer(columns, outputs)},
            "/v2/models/{name}/versions/{version}": {
                "get": _v2_get("Model metadata.", version=True)
            },
            "/v2/models/{name}/versions/{version}/ready": {
                "get": _v2_get("Model readiness.", version=True)
            },
            "/v2/models/{name}/versions/{version}/infer": {
                "post": _infer(columns, outputs, version=True)
            },
        },
    }


def _json_obj(schema: dict | None = None) -> dict:
    return {"application/json": {"schema": schema or {"type": "object"}}}


def _get(summary: str, content: dict) -> dict:
    return {"summary": summary, "responses": {"200": {"description": "OK", "content": content}}}


def _probe(summary: str, v2: bool = False) -> dict:
    # MLflow's /ping answers "\n" labelled application/json: no schema to hold it to.
    content = _json_obj() if v2 else _UNTYPED
    return {
        "summary": summary,
        "responses": {
            "200": {"description": "Ready.", "content": content},
            "503": {"description": "Not ready yet.", "content": content},
        },
    }


def _errors(codes: list[str], schema: dict) -> dict:
    return {code: {"description": "Error.", "content": _json_obj(schema)} for code in codes}


def _value(column: Any) -> dict:
    """JSON Schema of one value of a column, from the MLflow type table (predict.types);
    a type it does not know takes any value."""
    schema: dict[str, Any] = {}
    if column.type in INTEGRAL:
        low, high = RANGES[column.type]
        schema = {"type": "integer", "minimum": low, "maximum": high}
    elif column.type in NUMERIC:
        schema = {"type": "number"}
    elif column.type in _OTHER_TYPES:
        schema = {"type": _OTHER_TYPES[column.type]}
    if not column.required:
        schema["nullable"] = True
    return schema


def _invocations(columns: list) -> dict:
    if columns:
        names = [c.name for c in columns]
        record = {
            "type": "object",
            "properties": {c.name: _value(c) for c in columns},
            "required": [c.name for c in columns if c.required],
            "additionalProperties": False,
        }
        row = {"type": "array", "items": {}, "minItems": len(names), "maxItems": len(names)}
        split = {
            "type": "object",
            "required": ["columns", "data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string", "enum": names}},
                "data": {"type": "array", "items": row},
            },
        }
        by_column = {
            "type": "object",
            "properties": {c.name: {"type": "array", "items": _value(c)} for c in columns},
            "required": [c.name for c in columns if c.required],
            "additionalProperties": False,
        }
    else:
        record = {"type": "object"}
        split = {"type": "object", "required": ["data"]}
        by_column = {"type": "object"}
    records = {"type": "array", "items": record}
    body = {
        "oneOf": [
            _single("dataframe_split", split),
            _single("dataframe_records", records),
            _single("instances", records),
            _single("inputs", {"oneOf": [by_column, records]}),
        ]
    }
    ok = {"type": "object", "required": ["predictions"], "properties": {"predictions": {}}}
    return {
        "summary": "Score rows (MLflow scoring protocol).",
        "requestBody": {
            "required": True,
            "content": {
                mlflow.CONTENT_TYPE_JSON: {"schema": body},
                mlflow.CONTENT_TYPE_CSV: {"schema": {"type": "string"}},
                mlflow.CONTENT_TYPE_PARQUET: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {"description": "Predictions.", "content": _json_obj(ok)},
            **_errors(["400", "403", "413", "415", "500", "503", "504"], _MLFLOW_ERROR),
        },
    }


def _single(key: str, schema: dict) -> dict:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: schema, "params": {"type": "object"}},
        "additionalProperties": False,
    }


def _parameters(version: bool) -> list[dict]:
    parameters = [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    if version:
        parameters.append(
            {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    return parameters


def _v2_get(summary: str, version: bool = False) -> dict:
    return {
        "summary": summary,
        "parameters": _parameters(version),
        "responses": {
            "200": {"description": "OK.", "content": _json_obj()},
            **_errors(["404", "503"], _V2_ERROR),
        },
    }


def _infer(columns: list, outputs: list[str], version: bool = False) -> dict:
    datatypes = sorted(NUMPY_DTYPES)
    if columns:
        tensor_name: dict = {"type": "string", "enum": [c.name for c in columns]}
    else:
        tensor_name = {"type": "string"}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": tensor_name,
            "shape": {"type": "array", "items": {"type": "integer"}, "maxItems": 8},
            "datatype": {"type": "string", "enum": datatypes},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    }
    request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": outputs or ["prediction"]}},
                },
            },
        },
    }
    response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string", "enum": datatypes},
                        "data": {"type": "array"},
                    },
                },
            },
        },
    }
    return {
        "summary": "V2 inference: one tensor per signature column "
        + "("
        + ", ".join(f"{c.name}: {MLFLOW_TO_V2.get(c.type, 'BYTES')}" for c in columns[:50])
        + ").",
        "parameters": _parameters(version),
        "requestBody": {"required": True, "content": _json_obj(request)},
        "responses": {
            "200": {"description": "Predictions as tensors.", "content": _json_obj(response)},
            **_errors(["400", "403", "404", "413", "500", "503", "504"], _V2_ERROR),
        },
    }
