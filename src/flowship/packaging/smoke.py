"""``flowship smoke-test URL``: is a running model server healthy and answering?

Checks, in order: readiness (``/v2/health/ready``, waiting up to ``wait_s``), metadata
(``/v2/models/NAME`` answers for the expected name), predictions (the served version's
input example, or a given body, through ``/invocations``: a 200 with one prediction per
row) and latency (the 95th percentile of a few sequential requests under a budget).
A failed check stops the ones after it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowship.errors import UsageError

MAX_EXAMPLE_BYTES = 5_000_000


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class SmokeResult:
    url: str
    model: str | None = None
    version: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "version": self.version,
            "passed": self.passed,
            "checks": [vars(c) for c in self.checks],
        }


def smoke_test(
    url: str,
    *,
    model: str | None = None,
    example: Path | None = None,
    wait_s: float = 60.0,
    requests: int = 20,
    max_p95_ms: float = 1000.0,
    timeout_s: float = 10.0,
) -> SmokeResult:
    """Run the checks against the server at ``url``; never raises for a failed check."""
    import httpx

    base = _base_url(url)
    if not 0 <= wait_s <= 3600 or not 1 <= requests <= 10_000 or max_p95_ms <= 0:
        raise UsageError(
            "--wait must be 0 to 3600 s, --requests 1 to 10000 and --max-p95-ms positive.",
            "Example: flowship smoke-test http://127.0.0.1:5000 --wait 60 --requests 20",
        )
    body = _read_example(example) if example is not None else None
    result = SmokeResult(url=base)
    with httpx.Client(base_url=base, timeout=timeout_s) as client:
        for step in (_ready, _metadata, _predictions, _latency):
            check, body = step(client, result, model, body, wait_s, requests, max_p95_ms)
            result.checks.append(check)
            if not check.passed:
                break
    return result


def _base_url(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2000:
        raise UsageError(f"{url[:200]!r} is not an http(s) URL.", "Example: http://127.0.0.1:5000")
    return url.strip().rstrip("/")


def _read_example(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_EXAMPLE_BYTES:
            raise UsageError(f"{path} is larger than 5 MB.", "A smoke test needs a few rows.")
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}.", "Check the path.") from None
    except (ValueError, UnicodeDecodeError):
        raise UsageError(
            f"{path} is not JSON.",
            'Give an /invocations body, e.g. {"dataframe_split": {"columns": [...], '
            '"data": [[...]]}}.',
        ) from None
    if not isinstance(body, dict):
        raise UsageError(f"{path} is not a JSON object.", "Give an /invocations body.")
    return body


def _failed(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _ready(client, result, model, body, wait_s, requests, budget):
    import httpx

    deadline = time.monotonic() + wait_s
    last = ""
    while True:
        try:
            answer = client.get("/v2/health/ready")
            if answer.status_code == 200:
                return Check("ready", True, "/v2/health/ready answered 200"), body
            last = f"/v2/health/ready answered {answer.status_code}"
        except httpx.HTTPError as exc:
            last = f"/v2/health/ready: {_failed(exc)}"
        if time.monotonic() >= deadline:
            return Check("ready", False, f"{last} (waited {wait_s:g} s)"), body
        time.sleep(0.5)


def _metadata(client, result, model, body, wait_s, requests, budget):
    import httpx

    try:
        info = client.get("/flowship")
        served = info.json().get("model") or {} if info.status_code == 200 else {}
        name = model or served.get("name")
        if not name:
            return Check("metadata", False, "no model name: pass --model NAME"), body
        answer = client.get(f"/v2/models/{name}")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return Check("metadata", False, _failed(exc)), body
    if answer.status_code != 200:
        return Check("metadata", False, f"/v2/models/{name} answered {answer.status_code}"), body
    meta = answer.json()
    result.model = meta.get("name")
    result.version = (meta.get("versions") or [None])[0]
    inputs = ", ".join(i.get("name", "?") for i in meta.get("inputs", []))
    if body is None:
        try:
            body = _input_example(served.get("uri"))
        except Exception as exc:  # the registry is the user's: say what failed, do not crash
            return Check("metadata", False, f"no input example to send: {_failed(exc)}"), None
        if body is None:
            why = "the served model has no input example; pass --example FILE"
            return Check("metadata", False, why), None
    detail = f"{result.model} version {result.version or '-'}; inputs {inputs or '-'}"
    return Check("metadata", True, detail), body


def _input_example(uri: str | None) -> dict[str, Any] | None:
    """The served version's logged input example as an /invocations body."""
    if not uri:
        return None
    from flowship.predict.artifacts import local_model_dir, read_mlmodel
    from flowship.predict.refs import resolve_ref

    path = local_model_dir(resolve_ref(uri))
    frame = read_mlmodel(path).load_input_example(str(path))
    if frame is None or not hasattr(frame, "to_json"):
        return None
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _rows(body: dict[str, Any]) -> int | None:
    for key in ("dataframe_split", "dataframe_records", "inputs", "instances"):
        if key in body:
            value = body[key]
            return len(value.get("data", [])) if isinstance(value, dict) else len(value)
    if "data" in body:  # the seed's MLflow 1.x body
        return len(body["data"])
    return None


def _predictions(client, result, model, body, wait_s, requests, budget):
    import httpx

    try:
        answer = client.post("/invocations", json=body)
    except httpx.HTTPError as exc:
        return Check("predict", False, _failed(exc)), body
    if answer.status_code != 200:
        return Check("predict", False, f"/invocations answered {answer.status_code}: "
                     f"{answer.text[:300]}"), body  # fmt: skip
    try:
        predictions = answer.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        return Check("predict", False, "/invocations answered without 'predictions'"), body
    rows = _rows(body)
    count = len(predictions) if isinstance(predictions, list) else None
    if rows is not None and count != rows:
        return Check("predict", False, f"{count} predictions for {rows} rows"), body
    shown = json.dumps(predictions[:3]) if isinstance(predictions, list) else "?"
    return Check("predict", True, f"{count} predictions, first {shown}"), body


def _latency(client, result, model, body, wait_s, requests, budget):
    import httpx
    import numpy as np

    times = []
    try:
        for _ in range(requests):
            start = time.perf_counter()
            answer = client.post("/invocations", json=body)
            times.append((time.perf_counter() - start) * 1000)
            if answer.status_code != 200:
                return Check("latency", False, f"a request answered {answer.status_code}"), body
    except httpx.HTTPError as exc:
        return Check("latency", False, _failed(exc)), body
    p50, p95 = np.percentile(times, [50, 95])
    detail = f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {requests} requests (budget {budget:g} ms)"
    return Check("latency", bool(p95 <= budget), detail), body
