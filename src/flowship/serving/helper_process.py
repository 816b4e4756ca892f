"""A server's helper processes (the body decoder, the prediction-log writer): work that
must not hold the server's GIL runs in a spawned child, which dies with its server.

A server killed with SIGKILL (or by the OOM killer) cannot shut its pools down, and a
child would wait for work forever, so each child watches its parent and leaves by
itself once the parent is gone. Work that must not be cut in half (a Delta commit)
runs inside :func:`finishing`: the child finishes it first, then leaves.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_finishing = threading.Lock()  # in the child: held while work must be completed


def helper_pool() -> ProcessPoolExecutor:
    """A pool of one spawned process that exits when this process dies."""
    return ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def finishing() -> threading.Lock:
    """In a helper process: ``with finishing(): ...`` is completed even if the parent
    dies meanwhile."""
    return _finishing


def _exit_with_parent(parent: int) -> None:
    """Runs first in the helper process."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        with _finishing:
            os._exit(0)

    threading.Thread(target=watch, name="flowship-parent-watch", daemon=True).start()
