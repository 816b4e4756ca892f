"""The ASGI application: MLflow's scoring protocol, the Open Inference Protocol (V2),
health, readiness, metrics and the OpenAPI document, in front of one micro-batched
Predictor.

Every HTTP request first passes the guards, in order: the Host header (DNS rebinding,
``hosts.py``), then, for a POST, the cap on requests in flight. ``POST /invocations`` is
the hot path and is handled as raw ASGI (no request object, no middleware): read the body
within the byte budget, decode straight to columns,
wait for the batcher, encode with orjson. Everything else goes through a Starlette router.
Large bodies are decoded in a separate process (``decoder.py``), never on the event loop.

Errors are mapped in one place: :meth:`ServingApp.error_answer` turns any exception into
a status and a body in the protocol's shape (``serving/errors.py``), counts it and logs
it. The Starlette exception handlers, registered once, call it for every routed endpoint;
the raw ``/invocations`` path calls it directly, since it bypasses Starlette for speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowship.errors import FlowshipError
from flowship.redact import redact
from flowship.serving import heap, mlflow_protocol, openapi, v2_routes
from flowship.serving.batching import MicroBatcher
from flowship.serving.config import ServeConfig
from flowship.serving.decoder import INLINE_BYTES, DecoderProcess
from flowship.serving.errors import (
    HostNotAllowed,
    Overloaded,
    as_flowship_error,
    error_response,
)
from flowship.serving.follow import ModelHolder, headers_of, labels_of
from flowship.serving.hosts import allowed_hosts, host_of
from flowship.serving.limits import START, ByteBudget, ClientGone, RequestLimits, read_body
from flowship.serving.metrics import CONTENT_TYPE, ServingMetrics

log = logging.getLogger(__name__)

JSON = b"application/json"
_NO_MODEL = ("", "", "")


class _PerModel:
    """What the hot path needs of the served version, computed once per version."""

    __slots__ = ("predictor", "width", "names", "headers", "labels", "limits", "openapi")

    def __init__(self, predictor: Any, config: ServeConfig, width: int | None = None) -> None:
        """``width``: the input columns the request limits allow for, when not the
        predictor's own (a deployment's widest variant)."""
        self.predictor, self.width = predictor, width
        columns = predictor.input_columns if predictor is not None else []
        self.names = frozenset(c.name for c in columns)
        self.headers = headers_of(predictor) if predictor is not None else []
        self.labels = labels_of(predictor) if predictor is not None else _NO_MODEL
        self.limits = RequestLimits.for_model(
            len(columns) if width is None else width,
            max_extra_columns=config.max_extra_columns,
            max_cells=config.max_cells,
        )
        self.openapi: bytes | None = None


class ServingApp:
    """The ASGI callable. Build it with :func:`create_app`."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = ServingMetrics()
        self.router: Any = None  # a DeploymentRouter with --deployment; it is the holder too
        if config.deployment is not None:
            from flowship.serving.router import DeploymentRouter

            self.router = DeploymentRouter(config, self.metrics)
        self.holder: Any = self.router or ModelHolder(config, self.metrics)
        self.batcher = MicroBatcher(
            self.holder.get,
            metrics=self.metrics,
            max_batch_size=config.max_batch_size,
            max_wait_s=config.max_batch_wait_ms / 1000,
            max_queue=config.max_queue,
        )
        self.budget = ByteBudget(config.max_inflight_bytes)
        self.decoder = DecoderProcess()
        self.in_flight = 0
        self._hosts = allowed_hosts(config.host, config.allowed_hosts)
        self._cache = _PerModel(None, config)
        handlers: dict[Any, Any] = {
            HTTPException: self._on_http_exception,
            ClientGone: self._on_client_gone,
            FlowshipError: self._on_error,
            TimeoutError: self._on_error,
            Exception: self._on_error,  # Starlette's last resort (it re-raises to uvicorn)
        }
        self._router = Starlette(
            routes=_routes(self), lifespan=self._lifespan, exception_handlers=handlers
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        if (
            self._hosts is not None
            and (host := host_of(scope)) is not None
            and host not in self._hosts
        ):
            await self._send_error(scope, send, HostNotAllowed(host.decode("latin-1")))
            return
        if scope["method"] != "POST":  # health, metadata, metrics: cheap, never refused
            await self._router(scope, receive, send)
            return
        scope[START] = time.perf_counter()
        if self.in_flight >= self.config.max_requests_in_flight:
            busy = Overloaded(f"{self.in_flight} requests are already in flight")
            await self._send_error(scope, send, busy)
            return
        self.in_flight += 1
        try:
            if scope["path"] == "/invocations":
                await self._invocations(scope, receive, send)
            else:
                await self._router(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.budget.release(scope)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        # Workers share one socket, and uvicorn starts accepting on it only after
        # startup: making the first load attempt part of startup means the kernel never
        # hands a request to a worker that is still loading. (A lone process answers at
        # once instead: live, and 503 until ready.)
        if self.config.workers > 1 and await asyncio.to_thread(self.holder.check):
            await asyncio.to_thread(heap.settle)
        if self.router is not None:
            self.router.start()
        follower = asyncio.create_task(self.holder.follow(), name="flowship-follow")
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            self.batcher.close()
            self.decoder.close()
            if self.router is not None:
                await self.router.close()  # flushes the prediction log
            self.metrics.worker_exited()

    # ------------------------------------------------------------ MLflow protocol

    async def _invocations(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        predictor = routed = None
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                content_type = headers.get(b"content-type")
                mime = (
                    mlflow_protocol.CONTENT_TYPE_JSON
                    if content_type == b"application/json"  # the common case, unparsed
                    else mlflow_protocol.media_type(_text(content_type))
                )
                body = await read_body(
                    scope, receive, headers, self.config.max_body_bytes, self.budget
                )
                limits = self.per_model().limits
                json = mime == mlflow_protocol.CONTENT_TYPE_JSON
                if json and len(body) <= INLINE_BYTES:
                    decoded = mlflow_protocol.decode(body, mime, limits)
                    sequences = True  # every column a list or tuple: batches merge cheaply
                else:
                    decoded = await self.decoder.run(mlflow_protocol.decode, body, mime, limits)
                    sequences = False
                del body
                if self.router is not None:
                    routed = await self.router.route(
                        decoded.columns, decoded.n_rows, headers=headers, sequences=sequences,
                        start=scope[START],
                    )  # fmt: skip
                    result = routed.result
                else:
                    columns = self._filter_extra(decoded.columns)
                    result, predictor, _ = await self.batcher.predict(
                        columns, decoded.n_rows, sequences=sequences
                    )
            payload = mlflow_protocol.encode_predictions(result)
        except ClientGone:
            return
        except Exception as exc:  # handed to the one error mapping (Starlette's is bypassed)
            await self._send_error(scope, send, exc)
            return
        if routed is not None:
            who = routed.headers
            self.observe_routed(routed, "mlflow", scope[START])
        else:
            served = self.per_model(predictor)
            who = served.headers
            self.observe(served.labels, "mlflow", 200, scope[START])
        response_headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(payload)).encode()),
            *who,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
        if routed is not None and routed.shadow_copies:
            await self.router.after_response(routed)  # shadows score after the answer

    # ------------------------------------------------------------ errors, one place

    def error_answer(
        self, scope: dict, exc: BaseException
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """(status, body, headers) for any exception on any endpoint; a POST (a
        prediction request) is also counted in the request and error metrics."""
        error = as_flowship_error(exc, self.config.request_timeout_s)
        protocol = "v2" if scope["path"].startswith("/v2") else "mlflow"
        status, body, headers = error_response(error, protocol)
        if scope.get("method") == "POST":
            failed = getattr(exc, "failed_answer", None)  # a deployment's variant failed
            if failed is not None:
                labels, who = failed.model_labels, failed.headers
            else:
                served = self.holder.current
                labels = labels_of(served) if served is not None else _NO_MODEL
                who = self.per_model(served).headers
            self.metrics.errors.inc(*labels, protocol, type(error).__name__)
            self.observe(labels, protocol, status, scope.get(START, time.perf_counter()))
            headers = [*headers, *who]
        return status, body, headers

    async def _send_error(self, scope: dict, send: Any, exc: BaseException) -> None:
        status, body, headers = self.error_answer(scope, exc)
        response_headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def _on_error(self, request: Request, exc: Exception) -> Response:
        status, body, headers = self.error_answer(request.scope, exc)
        return _response(body, status, headers)

    async def _on_http_exception(self, request: Request, exc: HTTPException) -> Response:
        """Starlette's own 404 and 405, in the protocol's JSON shape."""
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            message = f"No endpoint {path[:200]}. GET /openapi.json lists the endpoints."
        else:
            message = f"{method} is not allowed on {path[:200]}: {exc.detail}."
        if path.startswith("/v2"):
            body = orjson.dumps({"error": message})
        else:
            code = "ENDPOINT_NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
            body = orjson.dumps({"error_code": code, "message": message})
        return Response(body, exc.status_code, exc.headers, media_type="application/json")

    async def _on_client_gone(self, request: Request, exc: ClientGone) -> Response:
        return Response(b"", 400)  # nobody is listening

    # ------------------------------------------------------------ shared helpers

    def per_model(self, predictor: Any = None) -> _PerModel:
        """The served version's names, headers, limits, computed once per version (and,
        with a deployment, once per width of its widest variant)."""
        if predictor is None:
            predictor = self.holder.current
        width = self.router.input_width if self.router is not None else None
        cached = self._cache
        if cached.predictor is not predictor or cached.width != width:
            self._cache = cached = _PerModel(predictor, self.config, width)
        return cached

    def _filter_extra(self, columns: dict[str, Any]) -> dict[str, Any]:
        """With ``extra_columns: ignore``, drop columns the signature does not name (as
        MLflow does) before they reach the batcher, so that they cannot split batches."""
        predictor = self.holder.current
        if self.config.extra_columns == "reject" or predictor is None:
            return columns
        names = self.per_model(predictor).names
        if not names or names.issuperset(columns):
            return columns
        return {k: v for k, v in columns.items() if k in names}

    def observe(self, labels: tuple[str, str, str], protocol: str, status: int, start: float):
        self.metrics.tally.request(labels, protocol, status, time.perf_counter() - start)

    def observe_routed(self, routed: Any, protocol: str, start: float) -> None:
        """A deployment's answered request: its request metrics and its variants'."""
        seconds = time.perf_counter() - start
        self.metrics.tally.routed(routed.answer, routed.rows, protocol, seconds)

    def served_name(self) -> str:
        predictor = self.holder.current
        name = predictor.model_name if predictor else self.holder.model_name
        return self.config.name or name or "model"


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _response(body: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> Response:
    response = Response(body, status, media_type="application/json")
    response.raw_headers.extend(headers)
    return response


# ---------------------------------------------------------------- other routes


def _routes(app: ServingApp) -> list[Route]:
    async def ping(request: Request) -> Response:
        if app.holder.ready:
            return Response("\n", 200, media_type="application/json")
        return Response("\n", 503, media_type="application/json", headers={"retry-after": "1"})

    async def mlflow_version(request: Request) -> Response:
        try:
            text = version("mlflow")
        except PackageNotFoundError:  # MLflow answers with its own version; we have none
            from flowship import __version__ as text
        return Response(text, 200, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(app.metrics.render(), media_type=CONTENT_TYPE)

    async def info(request: Request) -> Response:
        predictor = app.holder.current
        body = {
            "ref": app.config.ref,
            "ready": app.holder.ready,
            "trusted": getattr(app.holder, "trusted", True),
            "worker": os.getpid(),
            "model": predictor.describe() if predictor else None,
            "last_error": app.holder.last_error,
        }
        if app.router is not None:
            body["deployment"] = app.router.describe()
        text = redact(orjson.dumps(body, default=str).decode())
        return Response(text, media_type="application/json")

    async def openapi_document(request: Request) -> Response:
        cached = app.per_model()
        if cached.openapi is None:
            document = openapi.document(cached.predictor, app.served_name())
            cached.openapi = orjson.dumps(document)
        return Response(cached.openapi, media_type="application/json")

    return [
        # POST is answered before routing; the route gives other methods a 405.
        Route("/invocations", app._invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", mlflow_version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/flowship", info, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
        *v2_routes.routes(app),
    ]


def create_app(config: ServeConfig) -> ServingApp:
    return ServingApp(config)
