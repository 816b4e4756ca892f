"""``flowship serve``: serve a model ref over HTTP (MLflow scoring protocol and V2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flowship.cli._app import app


@app.command()
def serve(
    ref: Annotated[
        str | None,
        typer.Argument(help="models:/NAME@alias, models:/NAME/Stage, models:/NAME/3, a dir."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A deployment.yaml with these settings.")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(help="Serve a recorded deployment (flowship deployment apply) by name."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port [5000].")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [1].")] = None,
    output: Annotated[
        str | None, typer.Option(help="predict (labels/values) or proba [predict].")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in /v2/models/NAME.")] = None,
    extra_columns: Annotated[
        str | None,
        typer.Option(help="reject unknown columns, or ignore them as MLflow does [reject]."),
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Rows per predict call [64].")] = None,
    max_batch_wait_ms: Annotated[
        float | None, typer.Option(help="Extra wait for a batch to fill [0].")
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="Waiting requests before 503 [256].")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body [20 MiB].")
    ] = None,
    max_extra_columns: Annotated[
        int | None, typer.Option(help="Columns beyond the signature's before 400 [64].")
    ] = None,
    max_cells: Annotated[
        int | None, typer.Option(help="Values (rows x columns) per request before 413 [10M].")
    ] = None,
    max_requests_in_flight: Annotated[
        int | None, typer.Option(help="Prediction requests at once before 503 [1024].")
    ] = None,
    max_inflight_bytes: Annotated[
        int | None, typer.Option(help="Request body bytes held at once before 503 [80 MiB].")
    ] = None,
    max_connections: Annotated[
        int | None, typer.Option(help="Open connections (uvicorn's limit) [2048].")
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Host header name to answer (repeatable; * = any). Default on loopback: "
            "localhost, 127.0.0.1, [::1]."
        ),
    ] = None,
    request_timeout_s: Annotated[
        float | None, typer.Option("--timeout", help="Seconds before 504 [30].")
    ] = None,
    poll_interval_s: Annotated[
        float | None,
        typer.Option("--poll-interval", help="Seconds between registry checks; 0 = pinned [5]."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve a model: MLflow's /invocations, the V2 /v2/models/NAME/infer, /metrics.

    Follows an alias or stage ref: a promotion or rollback is picked up within the poll
    interval, with no failed request.
    """
    from flowship.cli._render import say
    from flowship.errors import UsageError
    from flowship.predict import resolve_ref
    from flowship.serving import ServeConfig
    from flowship.serving.server import serve as run

    if deployment is not None:
        if ref is not None:
            raise UsageError(
                "Give a model ref or --deployment, not both.",
                f"Example: flowship serve --deployment {deployment}",
            )
        ref = f"deployment:{deployment}"
    options = {
        "ref": ref,
        "deployment": deployment,
        "host": host,
        "port": port,
        "workers": workers,
        "output": output,
        "name": name,
        "extra_columns": extra_columns,
        "max_batch_size": max_batch_size,
        "max_batch_wait_ms": max_batch_wait_ms,
        "max_queue": max_queue,
        "max_body_bytes": max_body_bytes,
        "max_extra_columns": max_extra_columns,
        "max_cells": max_cells,
        "max_requests_in_flight": max_requests_in_flight,
        "max_inflight_bytes": max_inflight_bytes,
        "max_connections": max_connections,
        "allowed_hosts": tuple(allowed_host) if allowed_host else None,
        "request_timeout_s": request_timeout_s,
        "poll_interval_s": poll_interval_s,
    }
    if config is not None:
        settings = ServeConfig.from_yaml(config, **options)
    elif ref is None:
        raise UsageError(
            "Nothing to serve: give a model ref or --config.",
            "Example: flowship serve models:/ChurnPredictor@production",
        )
    else:
        settings = ServeConfig.parse(
            {k: v for k, v in options.items() if v is not None}, source="options"
        )
    if settings.deployment is not None:
        _serve_deployment(settings, log_level)
        return
    resolved = resolve_ref(settings.ref)  # fail now, not in a worker, on an unknown ref
    _check_port(settings.host, settings.port)
    say(
        f"Serving {settings.ref} ({resolved.model_name or resolved.uri} version "
        f"{resolved.model_version or '-'}) on http://{settings.host}:{settings.port} "
        f"with {settings.workers} worker(s). Ctrl-C stops."
    )
    run(settings, log_level=log_level)


def _serve_deployment(settings: Any, log_level: str) -> None:
    from flowship.cli._render import say
    from flowship.deployments import current
    from flowship.serving.server import serve as run

    revision = current(settings.deployment)  # fail now on an unknown deployment
    _check_port(settings.host, settings.port)
    weights = " ".join(f"{n}={w:g}" for n, w in revision.spec.weights.items())
    shadows = ", ".join(revision.spec.shadows) or "none"
    say(
        f"Serving deployment {settings.deployment} revision {revision.revision} ({weights}; "
        f"shadows: {shadows}) on http://{settings.host}:{settings.port} with "
        f"{settings.workers} worker(s). Ctrl-C stops."
    )
    run(settings, log_level=log_level)


def _check_port(host: str, port: int) -> None:
    import socket

    from flowship.errors import Unavailable

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise Unavailable(
            f"Cannot listen on {host}:{port}: {exc.strerror}.",
            "Pick another --port, or stop the process using it.",
        ) from None
