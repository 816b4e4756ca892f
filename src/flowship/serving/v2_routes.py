"""Open Inference Protocol (KServe V2) REST endpoints.

Readiness is separate from liveness: ``/v2/health/live`` answers 200 as soon as the
process serves HTTP; ``/v2/health/ready`` and ``/v2/models/NAME/ready`` answer 200 only
once a model version is loaded and warmed. Endpoints raise; the app's exception
handlers answer ``{"error": message}`` with the status from ``serving/errors.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowship.errors import NotFound
from flowship.serving import v2_protocol as v2
from flowship.serving.decoder import INLINE_BYTES
from flowship.serving.follow import headers_of, labels_of
from flowship.serving.limits import START, read_body

EXTENSIONS = ["binary_tensor_data"]


class Server(Protocol):
    """What the V2 endpoints need of the app (``app.ServingApp``)."""

    config: Any
    holder: Any
    batcher: Any
    budget: Any
    decoder: Any
    router: Any

    def served_name(self) -> str: ...
    def per_model(self, predictor: Any = None) -> Any: ...
    def observe(self, labels: Any, protocol: str, status: int, start: float) -> None: ...
    def observe_routed(self, routed: Any, protocol: str, start: float) -> None: ...


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if hasattr(body, "model_dump"):
        body = body.model_dump(exclude_none=True)
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _str_headers(predictor: Any, routed: Any = None) -> dict[str, str]:
    pairs = routed.headers if routed is not None else headers_of(predictor)
    return {k.decode(): v.decode() for k, v in pairs}


def not_served(name: str, served: str) -> NotFound:
    return NotFound(
        f"Model {name[:200]!r} is not served here.",
        f"This server serves {served!r}: use /v2/models/{served}.",
    )


def routes(app: Server) -> list[Route]:
    def served(name: str, version: str | None = None) -> Any:
        """The predictor when NAME (and VERSION) is what this server serves."""
        if name != app.served_name():
            raise not_served(name, app.served_name())
        predictor = app.holder.get()
        if version is not None and version != str(predictor.model_version):
            raise NotFound(
                f"Model {name!r} version {version[:100]!r} is not served here.",
                f"This server serves version {predictor.model_version}.",
            )
        return predictor

    async def server_metadata(request: Request) -> Response:
        from flowship import __version__  # not at import: flowship/__init__ imports us

        return _json(
            v2.MetadataServerResponse(name="flowship", version=__version__, extensions=EXTENSIONS)
        )

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        is_ready = app.holder.ready
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    async def model_ready(request: Request) -> Response:
        served(request.path_params["name"], request.path_params.get("version"))
        return _json({"name": request.path_params["name"], "ready": True})

    async def model_metadata(request: Request) -> Response:
        predictor = served(request.path_params["name"], request.path_params.get("version"))
        inputs = [
            v2.MetadataTensor(
                name=c.name, datatype=v2.MLFLOW_TO_V2.get(c.type, "BYTES"), shape=[-1]
            )
            for c in predictor.input_columns
        ]
        out_type = v2.datatype_of(np.dtype(app.holder.output_dtype))
        outputs = [
            v2.MetadataTensor(name=n, datatype=out_type, shape=[-1])
            for n in predictor.output_columns
        ]
        body = v2.MetadataModelResponse(
            name=app.served_name(),
            versions=[str(predictor.model_version)] if predictor.model_version else None,
            platform=f"mlflow_{predictor.backend}",
            inputs=inputs,
            outputs=outputs,
            parameters={
                "backend": predictor.backend,
                "backend_reason": predictor.backend_reason,
                "output": predictor.output,
                "ref": app.config.ref,
                "run_id": predictor.run_id,
            },
        )
        return _json(body, headers=_str_headers(predictor))

    async def infer(request: Request) -> Response:
        async with asyncio.timeout(app.config.request_timeout_s):
            current = served(request.path_params["name"], request.path_params.get("version"))
            headers = dict(request.scope["headers"])
            body = await read_body(
                request.scope, request.receive, headers, app.config.max_body_bytes, app.budget
            )
            length = headers.get(b"inference-header-content-length")
            try:
                json_length = int(length) if length is not None else None
            except ValueError:
                json_length = -1
            columns = current.input_columns
            decode_args = (
                body,
                json_length,
                [c.name for c in columns],
                {c.name: c.type for c in columns},
                app.per_model(current).limits,
            )
            if len(body) <= INLINE_BYTES:
                decoded = _decode(*decode_args)
            else:
                decoded = await app.decoder.run(_decode, *decode_args)
            del body
            routed = None
            if app.router is not None:
                routed = await app.router.route(
                    decoded.columns, decoded.rows, headers=headers, start=request.scope[START]
                )
                result, predictor = routed.result, routed.predictor
            else:
                result, predictor, _ = await app.batcher.predict(decoded.columns, decoded.rows)
            outputs = v2.response_outputs(result, predictor.output_columns, decoded.outputs)
        response = _json(
            v2.InferenceResponse(
                model_name=app.served_name(),
                model_version=",".join(routed.versions)
                if routed
                else str(predictor.model_version or "") or None,
                id=decoded.id,
                parameters=_routed_parameters(routed) if routed else None,
                outputs=outputs,
            ),
            headers=_str_headers(predictor, routed),
        )
        if routed is not None:
            response.background = BackgroundTask(app.router.after_response, routed)
            app.observe_routed(routed, "v2", request.scope[START])
        else:
            app.observe(labels_of(predictor), "v2", 200, request.scope[START])
        return response

    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    ]


@dataclass(slots=True)
class _Decoded:
    """What infer keeps of a request: small enough to cross from the decoder process."""

    id: str | None
    outputs: list[v2.RequestOutput] | None
    columns: dict[str, Any]
    rows: int


def _decode(
    body: bytes, json_length: int | None, names: list[str], types: dict[str, str], limits: Any
) -> _Decoded:
    parsed, tail = v2.parse_request(body, json_length)
    columns, rows = v2.request_columns(parsed, tail, names, input_types=types, limits=limits)
    return _Decoded(parsed.id, parsed.outputs, columns, rows)


def _routed_parameters(routed: Any) -> dict[str, Any]:
    """Who answered a deployment's request, also in the V2 body."""
    parameters = {"variant": ",".join(routed.variants), "revision": routed.revision}
    if routed.request_id is not None:  # the id of its rows in the prediction log
        parameters["request_id"] = routed.request_id
    return parameters
