"""Serving a recorded deployment: every variant in one process, rows routed by key.

``DeploymentRouter`` stands where a single-model server has its ``ModelHolder``: it
follows the deployment's newest revision in flowship's state database (polling one
number), loads and warms every variant of a new revision beside the ones in service
(variants whose ref did not change are reused, warm), and switches with one assignment
only when all of them are ready. A variant that fails to load keeps the previous
revision serving, with the reason in the logs, ``/flowship`` and ``/metrics``. Each
variant's ``ModelHolder`` still follows its own alias (``@production``), as plain
``flowship serve`` does. Weight-0 variants stay loaded, so blue-green is a traffic change.

Per request: the key field is taken out of the columns (or read from the
``X-Flowship-Key`` header), each row is assigned with ``flowship.deployments.Assigner``
(the same pure function everywhere), rows are scored by their variant's micro-batcher
and put back in request order. Without a key, a request goes to one variant at random.
The assigner's table of bucket races is filled in a helper process at each revision
(``_fill``), so that keys do not run the races on the event loop one bucket at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from flowship.deployments.assign import BUCKETS, Assigner, race_table, unit
from flowship.errors import FlowshipError, InvalidInput
from flowship.serving import heap
from flowship.serving.batching import MicroBatcher
from flowship.serving.config import ServeConfig
from flowship.serving.errors import NotReady
from flowship.serving.follow import ModelHolder, labels_of
from flowship.serving.helper_process import helper_pool
from flowship.serving.metrics import Counter, Gauge, ServingMetrics
from flowship.serving.prediction_log import LogEntry, PredictionLog, Tag
from flowship.serving.shadow import ShadowCopy, ShadowQueue

log = logging.getLogger(__name__)
# Request ids: each worker process seeds its own generator from os.urandom at start.
_random = random.Random()

KEY_HEADER = b"x-flowship-key"
REQUEST_ID_HEADER = b"x-request-id"
MAX_HEADER_CHARS = 200  # a client's request id or key longer than this is cut


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (the answer cache)
class _Variant:
    name: str
    uri: str
    holder: ModelHolder
    batcher: MicroBatcher | None  # primaries only
    weight: float
    shadow: bool
    sample: float


@dataclass(frozen=True)
class Routing:
    """What one revision serves; replaced as a whole, never edited."""

    revision: int
    spec: Any  # DeploymentSpec
    variants: dict[str, _Variant]
    assigner: Assigner
    shadows: tuple[_Variant, ...] = ()

    # Asked on every request: read once (the spec is a pydantic model, slower to read).
    @cached_property  # the served model's limits, labels
    def heaviest(self) -> _Variant:
        return max((v for v in self.variants.values() if not v.shadow), key=lambda v: v.weight)

    @cached_property
    def key(self) -> str | None:
        return self.spec.key

    @cached_property
    def log_sample(self) -> float:
        return self.spec.log.sample if self.spec.log else 0.0


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a metrics tally key
class _Answer:
    """Who answered a request, as its response and metrics say it: built once per
    (revision, answering variants, their model versions), then only read."""

    variants: tuple[str, ...]
    predictors: tuple[Any, ...]
    headers: tuple[tuple[bytes, bytes], ...]
    labels: tuple[tuple[str, str], ...]  # (deployment, variant), for LoopTally.routed
    model_labels: tuple[str, str, str]  # the first row's model, for the request metrics


@dataclass(slots=True)
class Routed:
    """One answered request: the rows' results, who answered them and how many rows
    each answering variant scored. ``request_id`` is the id of its rows in the prediction
    log, None when the request is not logged."""

    request_id: str | None
    revision: int
    result: np.ndarray
    answer: _Answer
    rows: tuple[int, ...]
    shadow_copies: list[ShadowCopy] | None = None

    @property
    def predictor(self) -> Any:  # the first row's model (metrics labels)
        return self.answer.predictors[0]

    @property
    def variants(self) -> tuple[str, ...]:  # distinct answering variants, by first row
        return self.answer.variants

    @property
    def versions(self) -> list[str]:
        return [str(p.model_version or "") for p in self.answer.predictors]

    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]:
        if self.request_id is None:
            return self.answer.headers
        return [*self.answer.headers, (b"x-flowship-request-id", self.request_id.encode())]


class DeploymentRouter:
    def __init__(self, config: ServeConfig, metrics: ServingMetrics) -> None:
        assert config.deployment is not None
        self.config = config
        self.name = config.deployment
        self.metrics = metrics
        self._routing: Routing | None = None
        self._pool: dict[str, tuple[ModelHolder, MicroBatcher]] = {}  # uri -> warm variant
        self.last_error: str | None = None
        # The input columns a request may need: the widest variant's (0: a variant has no
        # signature); the request limits allow for it, not for the heaviest variant's.
        self.input_width: int | None = None
        self.log: PredictionLog | None = None
        self.shadows: ShadowQueue | None = None
        self._answers: dict[tuple, _Answer] = {}  # ((variant, predictor), ...) ->
        self._input_names: dict[int, tuple[Any, frozenset[str]]] = {}  # id(predictor) ->
        self._reject = config.extra_columns == "reject"  # columns reach the model as sent
        self.revision_gauge = metrics.register(
            Gauge("flowship_deployment_revision", "Revision being served.", ("deployment",))
        )
        self.load_failures = metrics.register(
            Counter(
                "flowship_deployment_load_failures_total",
                "Revisions not switched to because a variant failed to load.",
                ("deployment", "revision"),
            )
        )
        self.variant_metrics = metrics.variants()

    # ------------------------------------------------------------ ModelHolder's face

    @property
    def ready(self) -> bool:
        return self._routing is not None

    @property
    def current(self) -> Any:
        routing = self._routing
        return routing.heaviest.holder.current if routing else None

    @property
    def model_name(self) -> str | None:
        predictor = self.current
        return predictor.model_name if predictor else None

    @property
    def output_dtype(self) -> str:
        routing = self._routing
        return routing.heaviest.holder.output_dtype if routing else "float64"

    @property
    def revision(self) -> int | None:
        routing = self._routing
        return routing.revision if routing else None

    def get(self) -> Any:
        predictor = self.current
        if predictor is None:
            raise NotReady(self.config.ref)
        return predictor

    def describe(self) -> dict[str, Any]:
        routing = self._routing
        return {
            "name": self.name,
            "revision": routing.revision if routing else None,
            "key": routing.spec.key if routing else None,
            "buckets_drawn": routing.assigner.drawn if routing else None,
            "log": self.log.uri if self.log else None,
            "variants": [
                {
                    "name": v.name,
                    "ref": v.uri,
                    "role": "shadow" if v.shadow else "primary",
                    "weight": v.weight,
                    "version": getattr(v.holder.current, "model_version", None),
                    "last_error": v.holder.last_error,
                }
                for v in (routing.variants.values() if routing else [])
            ],
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------ following

    def check(self) -> bool:
        """Converge on the newest revision (blocking: call on a thread). True if it, or a
        variant's model, switched."""
        from flowship import deployments

        try:
            number = deployments.current_number(self.name)
            if number is None:
                raise deployments.DeploymentNotFound(self.name)
            routing = self._routing
            if routing is not None and routing.revision == number:
                # Each variant follows its alias; True when one of them switched.
                switched = [variant.holder.check() for variant in routing.variants.values()]
                self.input_width = _input_width(routing)
                return any(switched)
            revision = deployments.current(self.name)
        except FlowshipError as error:
            self.last_error = str(error)
            log.warning("Cannot read deployment %s: %s", self.name, error)
            return False
        return self._converge(revision)

    async def follow(self) -> None:
        while True:
            if await asyncio.to_thread(self.check):
                await asyncio.to_thread(heap.settle)
            interval = self.config.poll_interval_s
            await asyncio.sleep(interval if interval > 0 else 1.0)

    def _converge(self, revision: Any) -> bool:
        spec = revision.spec
        variants: dict[str, _Variant] = {}
        for name, variant in spec.variants.items():
            uri = spec.uri_of(name)
            pooled = self._pool.get(uri)
            if pooled is None:
                holder = ModelHolder(self.config.model_copy(update={"ref": uri}), self.metrics)
                holder.check()
                if not holder.ready:
                    self.last_error = (
                        f"revision {revision.revision}: variant {name!r} ({uri}) failed to "
                        f"load: {holder.last_error}"
                    )
                    self.load_failures.inc(self.name, str(revision.revision))
                    log.error(
                        "Not switching %s to revision %d: %s%s",
                        self.name,
                        revision.revision,
                        self.last_error,
                        f"; still serving revision {self._routing.revision}."
                        if self._routing
                        else "; nothing is served yet.",
                    )
                    return False
                pooled = (holder, self._batcher(holder))
            variants[name] = _Variant(
                name, uri, pooled[0], pooled[1], variant.weight, variant.shadow, variant.sample
            )
        self._pool.update({v.uri: (v.holder, v.batcher) for v in variants.values() if v.batcher})
        self._configure_log(spec)
        old = self._routing
        assigner = Assigner(spec.assignment_salt, spec.weights)
        self._routing = Routing(
            revision.revision,
            spec,
            variants,
            assigner,
            tuple(v for v in variants.values() if v.shadow),
        )
        if assigner.drawn < BUCKETS:
            threading.Thread(
                target=_fill, args=(assigner,), name="flowship-fill", daemon=True
            ).start()
        self.input_width = _input_width(self._routing)
        self.last_error = None
        self._answers.clear()
        self.revision_gauge.set(self.name, value=revision.revision)
        self.metrics.model_info.clear()  # each variant's holder set only its own
        for v in variants.values():
            self.metrics.model_info.set(*labels_of(v.holder.current), v.uri, value=1)
        in_use = {v.uri for v in variants.values()}
        for uri in [u for u in self._pool if u not in in_use]:
            _, batcher = self._pool.pop(uri)
            batcher.close()
        log.info(
            "Deployment %s: serving revision %d (%s)%s.",
            self.name,
            revision.revision,
            ", ".join(
                f"{v.name}={'shadow' if v.shadow else f'{v.weight:g}%'} "
                f"v{v.holder.current.model_version or '-'}"
                for v in variants.values()
            ),
            f", replacing revision {old.revision}" if old else "",
        )
        return True

    def _batcher(self, holder: ModelHolder) -> MicroBatcher:
        return MicroBatcher(
            holder.get,
            metrics=self.metrics,
            max_batch_size=self.config.max_batch_size,
            max_wait_s=self.config.max_batch_wait_ms / 1000,
            max_queue=self.config.max_queue,
            on_scored=self._log_scored,
        )

    def _configure_log(self, spec: Any) -> None:
        if spec.log is None or self.log is not None:
            # The log is opened once per process; a revision that changes its table takes
            # effect at the next restart (documented), so no rows are split mid-flight.
            return
        self.log = PredictionLog(
            spec.log.uri,
            deployment=self.name,
            metrics=self.metrics,
            flush_interval_s=spec.log.flush_interval_s,
            flush_rows=spec.log.flush_rows,
        )

    def start(self) -> None:
        """Start the shadow worker (inside the event loop)."""
        self.shadows = ShadowQueue(
            self.metrics,
            deployment=self.name,
            log_entry=self._log_shadow,
            max_requests=self.config.max_shadow_queue,
            timeout_s=self.config.request_timeout_s,
        )
        self.shadows.start()

    async def close(self) -> None:
        """Stop shadows, close batchers and flush the prediction log (a graceful stop)."""
        if self.shadows is not None:
            await self.shadows.close()
        for _, batcher in self._pool.values():
            batcher.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)

    def _failed(self, routing, request_id, headers, variant, keys, n_rows, start, error) -> None:
        """A primary variant that failed is counted, and logged too (status ``error``, no
        output), so the rollout's error-rate guardrails see it; the request still fails.
        ``error`` carries the variant's answer (``failed_answer``): the error response's
        headers and the request metrics name the model that failed
        (``ServingApp.error_answer``), not the heaviest variant's."""
        self.metrics.tally.count(self.variant_metrics.requests, (self.name, variant.name, "error"))
        predictor = variant.holder.current
        if predictor is None:
            return
        error.failed_answer = self._answer(routing.revision, ((variant, predictor),))
        if self.log is None:
            return
        request_id = request_id or _new_id()
        if not self._sampled(routing, request_id):
            return
        self.log.add(
            LogEntry(
                request_id,
                _client_request_id(headers),
                time.time(),
                routing.revision,
                variant.name,
                "primary",
                predictor,
                keys,
                {},
                n_rows,
                None,
                (time.perf_counter() - start) * 1000,
                status="error",
                error=f"{type(error).__name__}: {error}"[:500],
            )
        )

    def _log_shadow(self, entry: LogEntry) -> None:
        if self.log is not None:  # the request was sampled when its copy was made
            self.log.add(entry)

    # ------------------------------------------------------------ requests

    async def route(
        self,
        columns: dict[str, Any],
        n_rows: int,
        *,
        headers: dict[bytes, bytes],
        sequences: bool = False,
        start: float,
    ) -> Routed:
        """Score a request: assign rows, predict per variant, answer in row order.
        ``columns`` are the request's own (decoded for it): the key column is taken out."""
        routing = self._routing
        if routing is None:
            raise NotReady(self.config.ref)
        request_id: str | None = None  # made when something needs it (most do not)
        key_field = routing.key
        keys: list[str] | None = None
        if key_field is not None and (values := columns.pop(key_field, None)) is not None:
            keys = _keys(values, key_field)
            assigned = [routing.assigner(keys[0])] if n_rows == 1 else routing.assigner.many(keys)
        elif key_field is not None and (header_key := headers.get(KEY_HEADER)) is not None:
            keys = [header_key.decode("latin-1")[:MAX_HEADER_CHARS]] * n_rows
            assigned = [routing.assigner(keys[0])] * n_rows if n_rows else []
        else:
            request_id = _new_id()
            assigned = [routing.assigner(request_id)] * n_rows
        first = assigned[0] if assigned else routing.heaviest.name
        logged = False
        if self.log is not None:
            request_id = request_id or _new_id()
            logged = self._sampled(routing, request_id)
        client_request_id = _client_request_id(headers) if logged or routing.shadows else None
        groups: dict[str, list[int]] | None = None
        if n_rows <= 1 or assigned.count(first) == n_rows:  # one variant answers every row
            variant = routing.variants[first]
            # A logged request's rows reach the log with its micro-batch (_log_scored),
            # its Tag (prediction_log) as the buffer keeps it.
            tag: Tag | None = None
            if logged and n_rows:
                key = keys[0] if keys is not None and n_rows == 1 else keys
                tag = (request_id, client_request_id, key, n_rows, routing.revision, first, start)
            try:
                result, predictor, _ = await variant.batcher.predict(  # type: ignore[union-attr]
                    columns if self._reject else self._inputs(variant, columns),
                    n_rows,
                    sequences=sequences,
                    tag=tag,
                )
            except Exception as exc:
                self._failed(routing, request_id, headers, variant, keys, n_rows, start, exc)
                raise
            parts = ((variant, predictor),)
            answer = self._answers.get(parts) or self._answer(routing.revision, parts)
            rows = (n_rows,)
        else:
            groups = _groups(assigned)
            result, answer, scored = await self._route_rows(
                routing, groups, columns, keys, n_rows, request_id, headers, sequences, start
            )
            rows = tuple(len(g) for g in groups.values())
        if not logged and not routing.shadows:
            return Routed(None, routing.revision, result, answer, rows)
        request_id = request_id or _new_id()
        routed = Routed(request_id if logged else None, routing.revision, result, answer, rows)
        if logged and groups is not None:
            latency = (time.perf_counter() - start) * 1000
            self._log_answer(
                routed, answer, scored, groups, columns, keys, client_request_id, latency
            )
        if routing.shadows and n_rows:
            routed.shadow_copies = self._shadow_copies(
                routing, request_id, client_request_id, keys, columns, n_rows, logged, sequences
            )
        return routed

    async def _route_rows(
        self, routing, groups, columns, keys, n_rows, request_id, headers, sequences, start
    ) -> tuple[np.ndarray, _Answer, list[tuple[np.ndarray, np.ndarray | None]]]:
        """Rows of one request that several variants answer: scored at once, merged back
        into row order. Also each variant's (result, scored matrix rows), for the log."""
        calls = []
        for name, rows in groups.items():
            variant = routing.variants[name]
            part = self._inputs(variant, _take(columns, rows))
            calls.append(variant.batcher.predict(part, len(rows), sequences=sequences))  # type: ignore[union-attr]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            request_id = request_id or _new_id()  # one id for every failed variant's rows
            for (name, rows), outcome in zip(groups.items(), outcomes, strict=True):
                if isinstance(outcome, Exception):
                    subset = None if keys is None else [keys[i] for i in rows]
                    self._failed(
                        routing, request_id, headers, routing.variants[name], subset, len(rows),
                        start, outcome,
                    )  # fmt: skip
            raise failed[0]
        answer = self._answer(
            routing.revision,
            tuple(
                (routing.variants[name], predictor)
                for name, (_, predictor, _) in zip(groups, outcomes, strict=True)
            ),
        )
        scored = [(result, inputs) for result, _, inputs in outcomes]
        parts = [(rows, result) for rows, (result, _) in zip(groups.values(), scored, strict=True)]
        return _merge(n_rows, parts), answer, scored

    def _log_scored(self, predictor: Any, tagged: list, together: Any) -> None:
        """A micro-batch's logged requests (``tag``: route) into the prediction log: the
        batch's rows as one buffer entry when it was scored in one call, else each
        request's (an entry per request cost a logged server about 2% more throughput:
        docs/benchmarks.md)."""
        log = self.log
        assert log is not None  # tags are only made for a log
        if together is not None:
            columns, result, inputs = together
            log.add_scored(predictor, tagged, columns, len(result), result, inputs)
            return
        for one in tagged:
            _, n_rows, columns, (result, _, inputs) = one
            log.add_scored(predictor, (one,), columns, n_rows, result, inputs)

    def _log_answer(
        self, routed, answer, scored, groups, columns, keys, client_request_id, latency
    ) -> None:
        """The rows of a request several variants answered into the prediction log, one
        entry per answering variant."""
        now = time.time()
        for name, predictor, (output, inputs) in zip(
            answer.variants, answer.predictors, scored, strict=True
        ):
            rows = groups[name]
            self.log.add(  # type: ignore[union-attr]
                LogEntry(
                    routed.request_id,
                    client_request_id,
                    now,
                    routed.revision,
                    name,
                    "primary",
                    predictor,
                    None if keys is None else [keys[i] for i in rows],
                    _take(columns, rows),
                    len(rows),
                    output,
                    latency,
                    inputs=inputs,
                )
            )

    def _shadow_copies(
        self, routing, request_id, client_request_id, keys, columns, n_rows, logged, sequences
    ) -> list[ShadowCopy] | None:
        now = time.time()
        copies = [
            ShadowCopy(
                variant.name,
                routing.revision,
                variant.holder,
                request_id,
                client_request_id,
                now,
                keys,
                self._inputs(variant, columns),
                n_rows,
                logged,
                sequences,
            )
            for variant in routing.shadows
            if _chosen(routing, request_id, variant)
        ]
        return copies or None

    async def after_response(self, routed: Routed) -> None:
        """Hand the request's shadow copies to the shadow queue (the response is sent)."""
        if self.shadows is not None and routed.shadow_copies:
            for copy in routed.shadow_copies:
                self.shadows.submit(copy)

    def _inputs(self, variant: _Variant, columns: dict[str, Any]) -> dict[str, Any]:
        """With ``extra_columns: ignore``, what this variant's signature names."""
        if self._reject:
            return columns
        predictor = variant.holder.current
        cached = self._input_names.get(id(predictor))
        if cached is None or cached[0] is not predictor:
            if len(self._input_names) > 64:  # bounded: versions come and go
                self._input_names.clear()
            names = frozenset(c.name for c in predictor.input_columns) if predictor else frozenset()
            cached = self._input_names[id(predictor)] = (predictor, names)
        names = cached[1]
        if not names or names.issuperset(columns):
            return columns
        return {k: v for k, v in columns.items() if k in names}

    def _sampled(self, routing: Routing, request_id: str) -> bool:
        sample = routing.log_sample
        if sample >= 1.0:  # the common case: no hash
            return True
        return unit(routing.spec.assignment_salt, request_id, "log") < sample

    def _answer(self, revision: int, parts: tuple[tuple[_Variant, Any], ...]) -> _Answer:
        """The cached ``_Answer`` of (variant, the predictor that answered) pairs."""
        answer = self._answers.get(parts)
        if answer is None:
            if len(self._answers) > 256:  # bounded: variant combinations x versions
                self._answers.clear()
            names = tuple(variant.name for variant, _ in parts)
            predictors = tuple(predictor for _, predictor in parts)
            first = predictors[0]
            versions = ",".join(str(p.model_version or "") for p in predictors)
            answer = self._answers[parts] = _Answer(
                names,
                predictors,
                (
                    # One line for both: uvicorn checks each header line on every response.
                    (b"x-flowship-deployment", f"{self.name}; revision={revision}".encode()),
                    (b"x-flowship-variant", ",".join(names).encode()),
                    (b"x-flowship-model-name", str(first.model_name or first.uri).encode()),
                    (b"x-flowship-model-version", versions.encode()),
                    (b"x-flowship-backend", first.backend.encode()),
                ),
                tuple((self.name, name) for name in names),
                labels_of(first),
            )
        return answer


def _fill(assigner: Assigner) -> None:
    """Every bucket's race, computed in a helper process and handed to ``assigner``: run
    by each bucket's first key instead, the races cost a third of the requests of a
    server's first minutes a few microseconds each (262,144 buckets); run here, they
    would hold the GIL half a second at each revision. Until the table arrives, keys
    run their races as before (the same numbers)."""
    try:
        with helper_pool() as pool:
            table = pool.submit(race_table, assigner.salt, assigner.weights).result()
        assigner.fill(table)
    except Exception as exc:  # the table is only a head start
        log.warning(
            "Could not fill the assignment table (%s); buckets are drawn as keys come.", exc
        )


def _input_width(routing: Routing) -> int:
    widths = [
        len(predictor.input_columns)
        for variant in routing.variants.values()
        if (predictor := variant.holder.current) is not None
    ]
    return 0 if 0 in widths else max(widths, default=0)


def _new_id() -> str:
    # No syscall, no uuid object; a third of the time of formatting the int as hex.
    return _random.getrandbits(128).to_bytes(16, "big").hex()


def _chosen(routing: Routing, request_id: str, variant: _Variant) -> bool:
    return variant.sample >= 1.0 or (
        variant.sample > 0
        and unit(routing.spec.assignment_salt, request_id, variant.name) < variant.sample
    )


def _client_request_id(headers: dict[bytes, bytes]) -> str | None:
    """The client's ``X-Request-ID`` (cut to ``MAX_HEADER_CHARS``), for the log and shadows."""
    value = headers.get(REQUEST_ID_HEADER)
    return value.decode("latin-1")[:MAX_HEADER_CHARS] if value else None


def _keys(values: Any, field: str) -> list[str]:
    """The key column as text, one per row; a row without a key is a 400."""
    kind = type(values)
    if (kind is tuple or kind is list) and len(values) == 1:  # one row (most requests)
        value = values[0]
        if type(value) is str:
            return [value[:MAX_HEADER_CHARS]]
        if type(value) is int:
            return [str(value)[:MAX_HEADER_CHARS]]
    if isinstance(values, np.ndarray):
        values = values.tolist()
    keys = []
    for i, value in enumerate(values):
        kind = type(value)
        if kind is str:  # the common cases first
            keys.append(value[:MAX_HEADER_CHARS])
            continue
        if kind is int:
            keys.append(str(value)[:MAX_HEADER_CHARS])
            continue
        if value is None or (isinstance(value, float) and value != value):
            raise InvalidInput(
                f"Row {i} has no value for the key field {field!r}.",
                f"Give every row a {field}, or send none in any row (random assignment).",
            )
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 42.0 (a JSON number in a float column) is customer 42
        keys.append(str(value)[:MAX_HEADER_CHARS])
    return keys


def _groups(assigned: list[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(assigned):
        groups.setdefault(name, []).append(i)
    return groups


def _take(columns: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    index = np.asarray(rows)
    return {
        name: values[index] if isinstance(values, np.ndarray) else [values[i] for i in rows]
        for name, values in columns.items()
    }


def _merge(n_rows: int, parts: list[tuple[list[int], np.ndarray]]) -> np.ndarray:
    first = np.asarray(parts[0][1])
    dtype = np.result_type(*[np.asarray(p).dtype for _, p in parts])
    out = np.empty((n_rows, *first.shape[1:]), dtype=dtype)
    for rows, result in parts:
        out[np.asarray(rows)] = result
    return out
