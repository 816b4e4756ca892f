"""Keeping the garbage collector's full collections cheap in a long-running server.

A server's heap is mostly what it loaded once: MLflow, scikit-learn, pyarrow, the
models. CPython's full collection walks every tracked object, so each one (every few
thousand requests, since requests leave reference cycles behind: asyncio tasks and
futures) cost 30-50 ms of the event loop, about 5 us a request (docs/benchmarks.md).
After each switch to a new model or revision, :func:`settle` collects what the previous
one left and freezes everything still alive (``gc.freeze``): later collections walk only
what requests made since. Frozen objects that die in a cycle wait for the next
:func:`settle`, which unfreezes first: what waits is never more than what was alive at
the last switch.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """A full collection, then the survivors out of the collector's sight (30-50 ms)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
