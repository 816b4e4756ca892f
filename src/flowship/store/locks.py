"""Named locks that outlive a transaction, released when their holder dies.

``db.lock`` serialises one transaction; a lifecycle change needs more: it commits its
intent, writes MLflow, then commits the outcome, and no other change to the same model
may run in between. ``held(key)`` is that lock:

- PostgreSQL: a session-level advisory lock on a connection kept for the block; the
  server drops it when the connection closes, so a killed process frees it.
- SQLite: ``flock`` on a file beside the database (``flowship.db.locks/``); the kernel
  drops it when the process dies. SQLite's own write lock is taken only by the short
  transactions inside the block, so batch runs and monitors keep committing.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from flowship.config import get_settings
from flowship.store import db

_memory_locks: dict[str, threading.Lock] = {}
_memory_guard = threading.Lock()


@contextmanager
def held(key: str, url: str | None = None) -> Iterator[None]:
    """Hold the lock named ``key`` in the database at ``url`` for the block."""
    url = url or get_settings().resolved_database_url
    eng = db.engine(url)
    if eng.dialect.name == "postgresql":
        with _advisory(eng, key):
            yield
        return
    path = make_url(url).database
    if not path or path == ":memory:":  # one process owns the database: a thread lock
        with _memory_guard:
            lock = _memory_locks.setdefault(f"{url}|{key}", threading.Lock())
        with lock:
            yield
        return
    with file_lock(Path(f"{path}.locks") / f"{_digest(key)}.lock"):
        yield


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@contextmanager
def _advisory(eng, key: str) -> Iterator[None]:
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    conn = eng.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": number})
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": number})
            except Exception:  # never hand a connection that may hold the lock to the pool
                conn.invalidate()
    finally:
        conn.close()


@contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created, with its directory) for the block,
    across processes; the kernel drops it when the holder dies. ``wait=False``: when
    another process holds it, do not wait: the block runs without it, given False."""
    import fcntl

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock
