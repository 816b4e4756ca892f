"""The one table that turns flowship errors into HTTP statuses, and the server's own
limit errors (413, 503, 504).

Bodies follow the protocol the request came in on: MLflow's scoring server answers
``{"error_code": ..., "message": ...}``; the Open Inference Protocol answers
``{"error": ...}``.
"""

from __future__ import annotations

from flowship.errors import (
    ChangeFailed,
    CheckFailed,
    ConcurrentChange,
    FlowshipError,
    IllegalTransition,
    InvalidInput,
    MissingExtra,
    NotFound,
    SchemaMismatch,
    Unavailable,
    UsageError,
)

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


class Overloaded(Unavailable):
    def __init__(self, waiting: int) -> None:
        super().__init__(
            f"The server is overloaded: {waiting} requests are already waiting.",
            "Retry after the number of seconds in the Retry-After header.",
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
    (UnsupportedMediaType, 415, "BAD_REQUEST"),
    (SchemaMismatch, 400, "INVALID_PARAMETER_VALUE"),
    (UsageError, 400, "BAD_REQUEST"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (IllegalTransition, 409, "INVALID_STATE"),
    (ConcurrentChange, 409, "ABORTED"),
    (ChangeFailed, 503, "TEMPORARILY_UNAVAILABLE"),
    (Overloaded, 503, "TEMPORARILY_UNAVAILABLE"),
    (Unavailable, 503, "TEMPORARILY_UNAVAILABLE"),
    (TimedOut, 504, "DEADLINE_EXCEEDED"),
    (CheckFailed, 422, "INVALID_STATE"),
    (MissingExtra, 500, "INTERNAL_ERROR"),
    (FlowshipError, 500, "INTERNAL_ERROR"),
]


def status_for(error: FlowshipError) -> tuple[int, str]:
    for cls, status, code in STATUS_TABLE:
        if isinstance(error, cls):
            return status, code
    return 500, "INTERNAL_ERROR"  # unreachable: FlowshipError is the last row


def message_for(error: FlowshipError) -> str:
    text = str(error)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 16] + " ... (truncated)"
    return text


def retry_after(error: FlowshipError) -> str | None:
    """Seconds a client should wait before retrying, for the Retry-After header."""
    return "1" if isinstance(error, Unavailable) else None
