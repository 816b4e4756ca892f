"""A running run's heartbeat: it renews the run's lease in flowship's database while the
run works, so another host can tell a live run from one whose process died.

A run that loses its lease (an operator marked it failed, or the database could not be
reached for a whole lease, so another run may have taken the output over) must not
commit: ``check`` is called right before every commit and raises instead.
"""

from __future__ import annotations

import logging
import threading
import time

from flowship.errors import ConcurrentChange
from flowship.store import runs

log = logging.getLogger(__name__)


class Lease:
    """Renews ``run_id``'s lease every third of its length, on a daemon thread."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seconds = runs.lease_seconds()
        self._renewed = time.monotonic()  # start_run took the first lease
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="flowship-lease", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while self._lost is None and not self._stop.wait(self.seconds / 3):
            self._renew()

    def _renew(self) -> None:
        try:
            still_running = runs.renew_lease(self.run_id)
        except Exception as exc:  # the database is unreachable: try again next beat
            log.warning("Could not renew the lease of run %s: %s", self.run_id, exc)
            return
        if still_running:
            self._renewed = time.monotonic()
        else:
            self._lost = "it was marked failed while it ran"

    def check(self) -> None:
        """Raise unless the run still holds its lease (called before each commit, which
        renews it once more first)."""
        if self._lost is None:
            self._renew()
        lost = self._lost
        if lost is None and time.monotonic() - self._renewed >= self.seconds:
            lost = f"its lease was not renewed for {self.seconds:g} s"
        if lost is not None:
            raise ConcurrentChange(
                f"Run {self.run_id} no longer holds its output: {lost}. Nothing was committed.",
                "Check flowship runs for a run that took the output over, then run again.",
            )
