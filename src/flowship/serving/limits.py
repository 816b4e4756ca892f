"""What one request may cost, checked against what it declares before any work that grows
with the claim, and the server-wide budget of request bytes held at once.

A request is hostile until proven otherwise: a 0.3 MB body of records that each name a
new column, or a 4 MB Parquet file that declares two billion rows, must be refused
from its declared shape, not discovered by building it. So every decoder receives a
:class:`RequestLimits` (columns and cells, from the served model's signature) and checks
the shape first; bodies are read within :class:`ByteBudget`, which turns a crowd of slow
clients with large bodies into 503s instead of an out-of-memory kill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowship.errors import InvalidInput
from flowship.serving.errors import BodyTooLarge, DecodedTooLarge, Overloaded

# Without a signature the model's width is unknown: allow this many columns.
UNSIGNED_MAX_COLUMNS = 4096
# Scope keys: a request's reserved body bytes (released when it is answered), and when a
# POST arrived (for its latency).
RESERVED = "flowship.reserved"
START = "flowship.start"


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Limits on one request's decoded shape."""

    max_columns: int
    max_cells: int

    @classmethod
    def for_model(cls, width: int, *, max_extra_columns: int, max_cells: int) -> RequestLimits:
        columns = width + max_extra_columns if width else UNSIGNED_MAX_COLUMNS
        return cls(max_columns=columns, max_cells=max_cells)

    def check_columns(self, count: int, where: str) -> None:
        if count > self.max_columns:
            raise InvalidInput(
                f"{where} names {count} columns, more than the server's limit of "
                f"{self.max_columns} for this model (its signature's columns + "
                "max_extra_columns).",
                "Send only the model's input columns (GET /v2/models/NAME lists them).",
            )

    def check_cells(self, rows: int, columns: int, where: str) -> None:
        if rows * columns > self.max_cells:
            raise DecodedTooLarge(
                f"{where} declares {rows} rows x {columns} columns, more than the server's "
                f"limit of {self.max_cells} values per request.",
                _SMALLER,
            )

    def check_bytes(self, size: int, where: str) -> None:
        """Decoded data, at 8 bytes a value, must fit in ``max_cells`` values."""
        if size > 8 * self.max_cells:
            raise DecodedTooLarge(
                f"{where} declares {size} bytes of uncompressed data, more than the server's "
                f"limit of {8 * self.max_cells} bytes (max_cells x 8) per request.",
                _SMALLER,
            )


_SMALLER = "Send fewer rows per request, or raise max_cells in the deployment config."


UNLIMITED = RequestLimits(max_columns=1 << 62, max_cells=1 << 62)


class ByteBudget:
    """Request body bytes held by the server at once, across all requests of a process.

    A request reserves its declared ``Content-Length`` before its body is read (a body
    without one reserves as it arrives) and releases it when its answer has been sent.
    Single event-loop thread: no lock needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, scope: dict, size: int) -> None:
        if self.held + size > self.limit:
            raise Overloaded(
                detail=f"{self.held} request bytes are already being received or decoded"
            )
        self.held += size
        scope[RESERVED] = scope.get(RESERVED, 0) + size

    def release(self, scope: dict) -> None:
        self.held -= scope.pop(RESERVED, 0)


async def read_body(
    scope: dict, receive: Any, headers: dict, limit: int, budget: ByteBudget
) -> bytes:
    """The request body, refusing (413) one larger than ``limit`` before reading it, and
    (503) one that would take the server over its byte budget."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput("The Content-Length header is not a number.") from None
        if size > limit:
            raise BodyTooLarge(limit)
        budget.reserve(scope, size)
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
        if declared is None:
            budget.reserve(scope, len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
