"""Open Inference Protocol (KServe V2) REST endpoints.

Readiness is separate from liveness: ``/v2/health/live`` answers 200 as soon as the
process serves HTTP; ``/v2/health/ready`` and ``/v2/models/NAME/ready`` answer 200 only
once a model version is loaded and warmed. Errors answer ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowship.errors import FlowshipError, NotFound
from flowship.serving import v2_protocol as v2
from flowship.serving.errors import TimedOut, message_for, retry_after, status_for
from flowship.serving.follow import labels_of

if TYPE_CHECKING:
    from flowship.serving.app import ServingApp

EXTENSIONS = ["binary_tensor_data"]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if hasattr(body, "model_dump"):
        body = body.model_dump(exclude_none=True)
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _error(error: FlowshipError) -> Response:
    status, _ = status_for(error)
    headers = {"retry-after": s} if (s := retry_after(error)) else None
    return _json(v2.InferenceErrorResponse(error=message_for(error)), status, headers)


def routes(app: ServingApp) -> list[Route]:
    from flowship.serving.app import ClientGone, _model_headers, not_served, read_body

    def served(name: str, version: str | None = None) -> Any:
        """The predictor when NAME (and VERSION) is what this server serves."""
        if name != app.served_name():
            raise not_served(name, app.served_name())
        predictor = app.holder.get()
        if version is not None and version != str(predictor.model_version):
            raise NotFound(
                f"Model {name!r} version {version!r} is not served here.",
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
        try:
            served(request.path_params["name"], request.path_params.get("version"))
        except FlowshipError as error:
            return _error(error)
        return _json({"name": request.path_params["name"], "ready": True})

    async def model_metadata(request: Request) -> Response:
        try:
            predictor = served(request.path_params["name"], request.path_params.get("version"))
        except FlowshipError as error:
            return _error(error)
        inputs = [
            v2.MetadataTensor(
                name=c.name, datatype=v2.MLFLOW_TO_V2.get(c.type, "BYTES"), shape=[-1]
            )
            for c in predictor.input_columns
        ]
        import numpy as np

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
        start = time.perf_counter()
        predictor = None
        try:
            async with asyncio.timeout(app.config.request_timeout_s):
                served(request.path_params["name"], request.path_params.get("version"))
                headers = dict(request.scope["headers"])
                body = await read_body(
                    request.scope, request.receive, headers, app.config.max_body_bytes
                )
                length = headers.get(b"inference-header-content-length")
                try:
                    json_length = int(length) if length is not None else None
                except ValueError:
                    json_length = -1
                parsed, tail = v2.parse_request(body, json_length)
                names = [c.name for c in app.holder.get().input_columns]
                columns, rows = v2.request_columns(parsed, tail, names)
                routed = None
                if app.router is not None:
                    routed = await app.router.route(columns, rows, headers=headers, start=start)
                    result, predictor = routed.result, routed.predictor
                else:
                    result, predictor = await app.batcher.predict(columns, rows)
                outputs = v2.response_outputs(result, predictor.output_columns, parsed.outputs)
            response = _json(
                v2.InferenceResponse(
                    model_name=app.served_name(),
                    model_version=",".join(routed.versions)
                    if routed
                    else str(predictor.model_version or "") or None,
                    id=parsed.id,
                    parameters=_routed_parameters(routed) if routed else None,
                    outputs=outputs,
                ),
                headers=_str_headers(predictor, routed),
            )
            if routed is not None:
                response.background = BackgroundTask(app.router.after_response, routed)
        except ClientGone:
            return Response(b"", 400)  # nobody is listening
        except TimeoutError:
            response = _failed(app, TimedOut(app.config.request_timeout_s))
        except FlowshipError as error:
            response = _failed(app, error)
        current = predictor or app.holder.current
        labels = labels_of(current) if current is not None else ("", "", "")
        app._observe(labels, "v2", response.status_code, start)
        return response

    def _str_headers(predictor: Any, routed: Any = None) -> dict[str, str]:
        pairs = routed.headers if routed is not None else _model_headers(predictor)
        return {k.decode(): v.decode() for k, v in pairs}

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


def _routed_parameters(routed: Any) -> dict[str, Any]:
    """Who answered a deployment's request, also in the V2 body."""
    return {
        "variant": ",".join(routed.variants),
        "revision": routed.revision,
        "request_id": routed.request_id,
    }


def _failed(app: ServingApp, error: FlowshipError) -> Response:
    app._count_error(error, "v2")
    return _error(error)
