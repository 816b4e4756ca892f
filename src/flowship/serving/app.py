"""The ASGI application: MLflow's scoring protocol, the Open Inference Protocol (V2),
health, readiness and metrics, in front of one micro-batched Predictor.

``POST /invocations`` is the hot path and is handled as raw ASGI (no request object,
no middleware): read the body within the size limit, decode straight to columns, wait
for the batcher, encode with orjson. Everything else goes through a Starlette router.
Handlers only decode, call the Predictor and encode; errors become statuses in one
table (``serving/errors.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowship.errors import FlowshipError, InvalidInput, NotFound
from flowship.serving import mlflow_protocol
from flowship.serving.batching import MicroBatcher
from flowship.serving.config import ServeConfig
from flowship.serving.errors import (
    BodyTooLarge,
    TimedOut,
    message_for,
    retry_after,
    status_for,
)
from flowship.serving.follow import ModelHolder, labels_of
from flowship.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

JSON = b"application/json"
_NO_MODEL = ("", "", "")


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


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
        self._cache: tuple[Any, frozenset[str], list] | None = None
        self._router = Starlette(routes=_routes(self), lifespan=self._lifespan)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/invocations"
            and scope["method"] == "POST"
        ):
            await self._invocations(scope, receive, send)
            return
        await self._router(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        if self.config.workers > 1:
            # Workers share one socket, and uvicorn starts accepting on it only after
            # startup: making the first load attempt part of startup means the kernel
            # never hands a request to a worker that is still loading. (A lone process
            # answers at once instead: live, and 503 until ready.)
            await asyncio.to_thread(self.holder.check)
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
            if self.router is not None:
                await self.router.close()  # flushes the prediction log

    # ------------------------------------------------------------ MLflow protocol

    async def _invocations(self, scope: dict, receive: Any, send: Any) -> None:
        start = time.perf_counter()
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
                body = await read_body(scope, receive, headers, self.config.max_body_bytes)
                decoded = mlflow_protocol.decode(body, mime)
                sequences = mime == mlflow_protocol.CONTENT_TYPE_JSON
                if self.router is not None:
                    routed = await self.router.route(
                        decoded.columns, decoded.n_rows, headers=headers, sequences=sequences,
                        start=start,
                    )  # fmt: skip
                    result, predictor = routed.result, routed.predictor
                else:
                    columns = self._filter_extra(decoded.columns)
                    result, predictor = await self.batcher.predict(
                        columns, decoded.n_rows, sequences=sequences
                    )
            payload, status, extra = mlflow_protocol.encode_predictions(result), 200, []
        except ClientGone:
            return
        except TimeoutError:
            payload, status, extra = self._mlflow_error(TimedOut(self.config.request_timeout_s))
        except FlowshipError as error:
            payload, status, extra = self._mlflow_error(error)
        except Exception as unexpected:  # never a traceback to the client
            log.exception("Unexpected error on /invocations")
            payload, status, extra = self._mlflow_error(
                FlowshipError(f"Unexpected server error: {type(unexpected).__name__}.")
            )
        served = predictor or self.holder.current
        labels = labels_of(served) if served is not None else _NO_MODEL
        self._observe(labels, "mlflow", status, start)
        response_headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(payload)).encode()),
            *extra,
            *(routed.headers if routed is not None else self._served_headers(served)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
        if routed is not None:
            await self.router.after_response(routed)  # shadows score after the answer

    def _mlflow_error(self, error: FlowshipError) -> tuple[bytes, int, list]:
        status, code = status_for(error)
        self._count_error(error, "mlflow")
        return mlflow_protocol.error_body(code, message_for(error)), status, _error_headers(error)

    # ------------------------------------------------------------ shared helpers

    def _per_model(self, predictor: Any) -> tuple[Any, frozenset[str], list]:
        """(predictor, signature names, response headers), computed once per version."""
        cached = self._cache
        if cached is None or cached[0] is not predictor:
            names = frozenset(c.name for c in predictor.input_columns)
            self._cache = cached = (predictor, names, _model_headers(predictor))
        return cached

    def _served_headers(self, predictor: Any) -> list[tuple[bytes, bytes]]:
        return self._per_model(predictor)[2] if predictor is not None else []

    def _filter_extra(self, columns: dict[str, Any]) -> dict[str, Any]:
        """With ``extra_columns: ignore``, drop columns the signature does not name (as
        MLflow does) before they reach the batcher, so that they cannot split batches."""
        predictor = self.holder.current
        if self.config.extra_columns == "reject" or predictor is None:
            return columns
        names = self._per_model(predictor)[1]
        if not names or names.issuperset(columns):
            return columns
        return {k: v for k, v in columns.items() if k in names}

    def _observe(self, labels: tuple[str, str, str], protocol: str, status: int, start: float):
        self.metrics.requests.inc(*labels, protocol, str(status))
        self.metrics.latency.observe(time.perf_counter() - start, *labels, protocol)

    def _count_error(self, error: FlowshipError, protocol: str) -> None:
        served = self.holder.current
        labels = labels_of(served) if served is not None else _NO_MODEL
        self.metrics.errors.inc(*labels, protocol, type(error).__name__)
        if status_for(error)[0] >= 500:
            log.warning("%s request failed: %s", protocol, error)

    def served_name(self) -> str:
        predictor = self.holder.current
        name = predictor.model_name if predictor else self.holder.model_name
        return self.config.name or name or "model"


async def read_body(scope: dict, receive: Any, headers: dict, limit: int) -> bytes:
    """The request body, refusing (413) one larger than ``limit`` before reading it."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(limit)
        except ValueError:
            raise InvalidInput("The Content-Length header is not a number.") from None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _model_headers(predictor: Any) -> list[tuple[bytes, bytes]]:
    if predictor is None:
        return []
    return [
        (b"x-flowship-model-name", str(predictor.model_name or predictor.uri).encode()),
        (b"x-flowship-model-version", str(predictor.model_version or "").encode()),
        (b"x-flowship-backend", predictor.backend.encode()),
    ]


def _error_headers(error: FlowshipError) -> list[tuple[bytes, bytes]]:
    headers = []
    if (seconds := retry_after(error)) is not None:
        headers.append((b"retry-after", seconds.encode()))
    if isinstance(error, BodyTooLarge):
        headers.append((b"connection", b"close"))  # the unread body must not be parsed
    return headers


# ---------------------------------------------------------------- other routes


def _routes(app: ServingApp) -> list[Route]:
    from flowship.serving import v2_routes

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
        return Response(app.metrics.render(), media_type="text/plain; version=0.0.4")

    async def info(request: Request) -> Response:
        predictor = app.holder.current
        body = {
            "ref": app.config.ref,
            "ready": app.holder.ready,
            "model": predictor.describe() if predictor else None,
            "last_error": app.holder.last_error,
        }
        if app.router is not None:
            body["deployment"] = app.router.describe()
        return Response(orjson.dumps(body, default=str), media_type="application/json")

    return [
        # POST is answered before routing; the route gives other methods a 405.
        Route("/invocations", app._invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", mlflow_version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/flowship", info, methods=["GET"]),
        *v2_routes.routes(app),
    ]


def create_app(config: ServeConfig) -> ServingApp:
    return ServingApp(config)


def not_served(name: str, served: str) -> NotFound:
    return NotFound(
        f"Model {name!r} is not served here.",
        f"This server serves {served!r}: use /v2/models/{served}.",
    )
