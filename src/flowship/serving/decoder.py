"""Large request bodies are decoded in a separate process, so that no decoding work of
any size holds the server's event loop.

A thread is not enough: orjson, pandas' CSV reader and the building of columns hold the
GIL for as long as they run, about a second for a 20 MB JSON body, and meanwhile
``/ping`` waits. So bodies over ``INLINE_BYTES`` go to one decoder process per worker
(started on first use), which parses them and sends back numpy arrays wherever a column
is all floats or all integers (a memory copy to unpickle), and plain lists otherwise.
Small bodies, the common case, are decoded inline: a process hop costs more than they do.

A decoder that dies (a hostile body that exhausted its memory) is replaced; the request
that killed it gets a 503, the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from flowship.errors import FlowshipError, Unavailable
from flowship.serving.helper_process import helper_pool

log = logging.getLogger(__name__)

# Bodies up to this size are decoded on the event loop itself.
INLINE_BYTES = 64 * 1024


class _Failed:
    """A FlowshipError sent back across the process boundary (class, message, hint):
    pickling would call each subclass's own __init__ with the wrong arguments."""

    def __init__(self, error: FlowshipError) -> None:
        self.cls, self.message, self.hint = type(error), error.message, error.hint

    def rebuild(self) -> FlowshipError:
        error = self.cls.__new__(self.cls)
        FlowshipError.__init__(error, self.message, self.hint)
        return error


def _in_child(decode: Any, args: tuple) -> Any:
    try:
        result = decode(*args)
    except FlowshipError as error:
        return _Failed(error)
    columns = getattr(result, "columns", None)
    if isinstance(columns, dict):
        for name, values in columns.items():
            columns[name] = _packed(values)
    return result


def _packed(values: Any) -> Any:
    """A column as a numpy array when that loses nothing (all floats, or all ints that fit
    int64), so that it crosses back as one buffer; otherwise unchanged."""
    if not isinstance(values, list | tuple) or not values:
        return values
    first = type(values[0])
    if first is float and all(type(v) is float for v in values):
        return np.array(values, dtype=np.float64)
    if first is int and all(type(v) is int for v in values):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return values
    return values


class DecoderProcess:
    """One decoder process, started on first use and replaced when it dies."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, decode: Any, *args: Any) -> Any:
        """``decode(*args)`` in the decoder process; its FlowshipError is raised here."""
        if self._pool is None:
            self._pool = helper_pool()
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, _in_child, decode, args)
        except BrokenProcessPool:
            log.error("The decoder process died on a request; starting a new one.")
            self.close()
            raise Unavailable(
                "The server could not decode this request: its decoder process died.",
                "Send a smaller body; retry after the number of seconds in Retry-After.",
            ) from None
        if isinstance(result, _Failed):
            raise result.rebuild()
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
