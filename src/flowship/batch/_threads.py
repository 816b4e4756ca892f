"""Read ahead and write behind on threads: Arrow and Parquet release the GIL while they
decode, encode and compress, so I/O overlaps with scoring."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    pending: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))
            return
        put(_DONE)

    thread = threading.Thread(target=pump, name="flowship-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


class WriteBehind:
    """Calls ``write(item)`` on a thread, at most ``depth`` items behind the caller, so
    Parquet encoding and compression (which release the GIL) overlap with scoring.
    A failed write is raised by the next ``put`` or by ``close``."""

    def __init__(self, write: Callable[[T], None], depth: int = 2) -> None:
        self._write = write
        self._items: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="flowship-write", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)  # type: ignore[arg-type]
                except BaseException as error:  # handed to the caller
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        self._raise()
        self._items.put(item)

    def close(self) -> None:
        """Wait until every item is written; raise the first write error."""
        self._items.put(_DONE)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without raising (the caller is already handling an error)."""
        self._error = self._error or RuntimeError("aborted")
        self._items.put(_DONE)
        self._thread.join(timeout=30)
