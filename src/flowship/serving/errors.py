"""The one table that turns flowship errors into HTTP statuses, the server's own errors
(403, 413, 503, 504, a model that raised), and :func:`error_response`, the one function
that turns any exception into an answer.

Bodies follow the protocol the request came in on: MLflow's scoring server answers
``{"error_code": ..., "message": ...}``; the Open Inference Protocol answers
``{"error": ...}``. Messages go through :func:`flowship.redact.redact`, so a password
in a URL never reaches a client.
"""

from __future__ import annotations

import logging

import orjson

from flowship.errors import (
    ChangeFailed,
    CheckFailed,
    ConcurrentChange,
    FlowshipError,
    IllegalTransition,
    InvalidInput,
    MissingExtra,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    SchemaMismatch,
    ScoringFailed,
    Unavailable,
    UsageError,
)
from flowship.redact import redact

log = logging.getLogger(__name__)

# Hostile input (thousands of unknown columns) must not become a megabyte error body.
MAX_MESSAGE_CHARS = 2000


class BodyTooLarge(InvalidInput):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"Request body is larger than the server's limit of {limit} bytes.",
            "Send fewer rows per request, or raise max_body_bytes in the deployment config.",
        )


class UnsupportedMediaType(InvalidInput):
    """Wrong Content-Type (415)."""


class DecodedTooLarge(InvalidInput):
    """A body whose declared shape is over the server's per-request limit (413)."""


class Overloaded(Unavailable):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The server is overloaded: {detail}.",
            "Retry after the number of seconds in the Retry-After header.",
        )


class HostNotAllowed(UsageError):
    """A Host header naming a foreign domain on a loopback-bound server (DNS rebinding)."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Host {host[:100]!r} is not allowed: this server is bound to loopback and only "
            "answers requests addressed to it by a local name.",
            "Call it as 127.0.0.1 or localhost, or list the name with --allowed-host.",
        )


class ModelFailed(FlowshipError):
    """The model's own code raised. Its text goes to the log, never to the client."""

    def __init__(self, exc_type: str) -> None:
        super().__init__(
            f"The model raised {exc_type} while scoring this request.",
            "The server log has the details; check that the values fit the model's "
            "signature (GET /v2/models/NAME).",
        )


class NotReady(Unavailable):
    def __init__(self, ref: str) -> None:
        super().__init__(
            f"The model {ref} is not loaded yet.",
            "Wait until GET /v2/health/ready answers 200, then retry.",
        )


class TimedOut(FlowshipError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request was not answered within {seconds:g} s.",
            "Send fewer rows per request, or raise request_timeout_s.",
        )


# Most specific class first; the first match wins. (status, MLflow error_code)
STATUS_TABLE: list[tuple[type[FlowshipError], int, str]] = [
    (BodyTooLarge, 413, "REQUEST_LIMIT_EXCEEDED"),
    (DecodedTooLarge, 413, "REQUEST_LIMIT_EXCEEDED"),
    (HostNotAllowed, 403, "PERMISSION_DENIED"),
    (UnsupportedMediaType, 415, "BAD_REQUEST"),
    (SchemaMismatch, 400, "INVALID_PARAMETER_VALUE"),
    (UsageError, 400, "BAD_REQUEST"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (IllegalTransition, 409, "INVALID_STATE"),
    (ConcurrentChange, 409, "ABORTED"),
    (ChangeFailed, 503, "TEMPORARILY_UNAVAILABLE"),
    (NotAuthenticated, 401, "UNAUTHENTICATED"),
    (PermissionDenied, 403, "PERMISSION_DENIED"),
    (Overloaded, 503, "TEMPORARILY_UNAVAILABLE"),
    (Unavailable, 503, "TEMPORARILY_UNAVAILABLE"),
    (TimedOut, 504, "DEADLINE_EXCEEDED"),
    (CheckFailed, 422, "INVALID_STATE"),
    (ModelFailed, 500, "INTERNAL_ERROR"),
    (MissingExtra, 500, "INTERNAL_ERROR"),
    (FlowshipError, 500, "INTERNAL_ERROR"),
]


def status_for(error: FlowshipError) -> tuple[int, str]:
    for cls, status, code in STATUS_TABLE:
        if isinstance(error, cls):
            return status, code
    return 500, "INTERNAL_ERROR"  # unreachable: FlowshipError is the last row


def message_for(error: FlowshipError) -> str:
    text = redact(str(error))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 16] + " ... (truncated)"
    return text


def retry_after(error: FlowshipError) -> str | None:
    """Seconds a client should wait before retrying, for the Retry-After header."""
    return "1" if isinstance(error, Unavailable) else None


def as_flowship_error(exc: BaseException, timeout_s: float) -> FlowshipError:
    """Any exception as the FlowshipError a client may see; unexpected ones are logged
    with their traceback and answered with their class name only."""
    if isinstance(exc, ScoringFailed):  # the model's text goes to the log only
        log.warning("The model raised on a request: %s", exc, exc_info=exc.__cause__)
        return ModelFailed(exc.exc_type or "an error")
    if isinstance(exc, FlowshipError):
        return exc
    if isinstance(exc, TimeoutError):
        return TimedOut(timeout_s)
    log.error("Unexpected server error", exc_info=exc)
    return FlowshipError(f"Unexpected server error: {type(exc).__name__}.")


def error_response(
    error: FlowshipError, protocol: str
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, JSON body, extra headers) for ``error`` in the body shape of ``protocol``
    (``mlflow`` or ``v2``)."""
    status, code = status_for(error)
    message = message_for(error)
    if protocol == "v2":
        body = orjson.dumps({"error": message})
    else:
        body = orjson.dumps({"error_code": code, "message": message})
    headers = []
    if (seconds := retry_after(error)) is not None:
        headers.append((b"retry-after", seconds.encode()))
    if isinstance(error, BodyTooLarge | Overloaded):
        headers.append((b"connection", b"close"))  # an unread body must not be parsed
    if status >= 500:
        log.warning("%s request failed: %s", protocol, message)
    return status, body, headers
