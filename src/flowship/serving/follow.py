"""The model in service, and the loop that follows its ref through the registry.

``ModelHolder.current`` is the one Predictor requests use. Serving
``models:/NAME@production``, the follower re-resolves the ref every
``poll_interval_s``; when it points at a new version, that version is loaded and warmed
on a thread beside the old one, and only then swapped in with a single assignment, so
no request ever sees a half-loaded model. A version that fails to load or warm is never
switched to: the old one keeps serving, the failure is logged and counted in
``flowship_model_load_failures_total``, and the version is retried only after a pause.

The loop never dies silently: an unexpected error is logged, counted in
``flowship_follow_errors_total`` and retried with exponential backoff. When the ref
cannot be resolved for ``untrusted_after_s`` (or the registry says it names nothing),
readiness turns off: the served version may no longer be the one the registry names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from flowship.errors import FlowshipError, NotFound
from flowship.serving import heap
from flowship.serving.config import ServeConfig
from flowship.serving.errors import NotReady
from flowship.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

RETRY_FAILED_AFTER_S = 60.0
MAX_BACKOFF_S = 60.0
_WARM_VALUES = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False}


class ModelHolder:
    def __init__(self, config: ServeConfig, metrics: ServingMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._served: tuple[Any, str] | None = None  # (Predictor, output datatype), swapped
        self.last_error: str | None = None
        self.model_name: str | None = None  # from the last resolve, even before a load
        self._failed: dict[str, float] = {}  # uri -> monotonic time it may be retried
        self.trusted = True  # False once the ref has not resolved for too long
        self._unresolved_since: float | None = None

    @property
    def ready(self) -> bool:
        return self._served is not None and self.trusted

    @property
    def current(self) -> Any:
        """The Predictor in service, or None before the first load."""
        served = self._served
        return served[0] if served else None

    @property
    def output_dtype(self) -> str:
        """numpy dtype name of the served model's predictions (for V2 metadata)."""
        served = self._served
        return served[1] if served else "float64"

    def get(self) -> Any:
        served = self._served
        if served is None:
            raise NotReady(self.config.ref)
        return served[0]

    def check(self) -> bool:
        """Resolve the ref once; load, warm and switch to a new version. Blocking (call it
        on a thread). Returns True when it switched."""
        from flowship.predict import resolve_ref

        try:
            resolved = resolve_ref(self.config.ref)
        except FlowshipError as error:
            self.last_error = str(error)
            log.warning("Cannot resolve %s, keeping the current model: %s", self.config.ref, error)
            self.unresolved(definite=isinstance(error, NotFound))
            return False
        if not self.trusted:
            log.info("%s resolves again: ready.", self.config.ref)
        self._unresolved_since, self.trusted = None, True
        self.model_name = resolved.model_name
        current = self.current
        if current is not None and current.uri == resolved.uri:
            return False
        if time.monotonic() < self._failed.get(resolved.uri, 0.0):
            return False
        label = f"{resolved.model_name or resolved.uri} version {resolved.model_version or '-'}"
        log.info(
            "%s now points at %s: loading it beside the one in service.", self.config.ref, label
        )
        try:
            predictor, dtype = self._load(resolved.uri)
        except Exception as error:  # anything at all: the old model must keep serving
            self._failed[resolved.uri] = time.monotonic() + RETRY_FAILED_AFTER_S
            self.last_error = f"{label}: {error}"
            self.metrics.load_failures.inc(
                resolved.model_name or resolved.uri, resolved.model_version or ""
            )
            log.error(
                "Not switching to %s: it failed to load or warm up (%s: %s). %s",
                label,
                type(error).__name__,
                error,
                "Still serving the previous version." if current else "Nothing is served yet.",
            )
            return False
        self._switch(predictor, dtype)
        return True

    def unresolved(self, *, definite: bool = False) -> None:
        """The ref did not resolve: after ``untrusted_after_s`` of that (at once when the
        registry says it names nothing), readiness turns off."""
        now = time.monotonic()
        if self._unresolved_since is None:
            self._unresolved_since = now
        too_long = now - self._unresolved_since >= self.config.untrusted_after_s
        if self.trusted and self.current is not None and (definite or too_long):
            self.trusted = False
            log.error(
                "%s has not resolved %s: readiness is off until it does (still answering "
                "requests with version %s).",
                self.config.ref,
                "to any version" if definite else f"for {now - self._unresolved_since:.0f} s",
                self.current.model_version,
            )

    async def follow(self) -> None:
        """Load the first version, then keep following the ref until cancelled."""
        failures = 0
        while True:
            interval = self.config.poll_interval_s
            try:
                if await asyncio.to_thread(self.check):
                    await asyncio.to_thread(heap.settle)
            except Exception as error:  # the loop must outlive any one failure
                failures += 1
                self.metrics.follow_errors.inc()
                self.last_error = f"{type(error).__name__}: {error}"
                self.unresolved()
                delay = min(max(interval, 1.0) * 2 ** (failures - 1), MAX_BACKOFF_S)
                log.error(
                    "Following %s failed (%s); retrying in %.0f s.",
                    self.config.ref,
                    self.last_error,
                    delay,
                    exc_info=error,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if self.current is not None and interval == 0:
                return
            await asyncio.sleep(interval if interval > 0 else 1.0)

    def _load(self, uri: str) -> tuple[Any, str]:
        from flowship.predict import Predictor

        predictor = Predictor.load(uri, output=self.config.output, extra=self.config.extra_columns)
        return predictor, warm(predictor)

    def _switch(self, predictor: Any, dtype: str) -> None:
        old = self.current
        self._served = (predictor, dtype)  # the switch: one reference assignment
        self.last_error = None
        self.metrics.model_info.clear()
        self.metrics.model_info.set(*labels_of(predictor), self.config.ref, value=1)
        self.metrics.switches.inc(predictor.model_name or predictor.uri)
        log.info(
            "Serving %s version %s (backend %s: %s)%s.",
            predictor.model_name or predictor.uri,
            predictor.model_version or "-",
            predictor.backend,
            predictor.backend_reason,
            f", replacing version {old.model_version}" if old is not None else "",
        )


def headers_of(predictor: Any) -> list[tuple[bytes, bytes]]:
    """The response headers that say which model version answered."""
    return [
        (b"x-flowship-model-name", str(predictor.model_name or predictor.uri).encode()),
        (b"x-flowship-model-version", str(predictor.model_version or "").encode()),
        (b"x-flowship-backend", predictor.backend.encode()),
    ]


def labels_of(predictor: Any) -> tuple[str, str, str]:
    """(model, version, backend): the labels every per-model metric carries."""
    return (
        predictor.model_name or predictor.uri,
        str(predictor.model_version or ""),
        predictor.backend,
    )


def warm(predictor: Any) -> str:
    """Score a one-row and an eight-row input so that the first real request is not the
    one paying for lazy initialisation; raises when the model cannot score at all.
    Returns the numpy dtype name of the predictions."""
    columns = [c for c in predictor.input_columns if c.required] or predictor.input_columns
    if not columns:
        return "float64"  # no signature: nothing safe to invent
    dtype = "float64"
    for rows in (1, 8):
        sample = {c.name: [_WARM_VALUES.get(c.type, "")] * rows for c in columns}
        result = predictor.predict(sample)
        if len(result) != rows:
            raise FlowshipError(f"Warm-up returned {len(result)} results for {rows} rows.")
        dtype = str(result.dtype)
    return dtype
