"""Run the app under uvicorn: one process, or ``workers`` processes sharing the socket.

Each worker builds its own app from the config passed in the environment, loads the
model and follows the ref by itself. With several workers, metrics go through a
directory of memory-mapped files that every worker writes and any worker reads on a
scrape (prometheus_client's multiprocess mode); it is created here, before the workers
start, and removed when the server stops. On SIGTERM or Ctrl-C uvicorn stops accepting
connections and lets in-flight requests finish (up to ``graceful_timeout_s``) before
the process exits. Log lines go through :class:`flowship.redact.RedactingFilter`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from typing import Any

from flowship.redact import RedactingFilter
from flowship.serving.app import ServingApp, create_app
from flowship.serving.config import ServeConfig
from flowship.serving.metrics import MULTIPROC_ENV

CONFIG_ENV = "FLOWSHIP_SERVE_CONFIG"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve ``config.ref`` until interrupted. Blocks."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.model_dump_json()
    has = importlib.util.find_spec
    metrics_dir = None
    if config.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="flowship-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        _run(uvicorn, config, log_level, has)
    finally:
        if metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(uvicorn: Any, config: ServeConfig, log_level: str, has: Any) -> None:
    uvicorn.run(
        "flowship.serving.server:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        # uvloop and httptools roughly halve the per-request overhead when installed.
        loop="uvloop" if has("uvloop") else "asyncio",
        http="httptools" if has("httptools") else "h11",
        log_level=log_level,
        access_log=False,  # one log line per request costs more than the prediction
        timeout_graceful_shutdown=int(config.graceful_timeout_s) or None,
        timeout_keep_alive=30,
        limit_concurrency=config.max_connections,
        log_config=_log_config(log_level),
    )


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's own logging, with secrets redacted from its lines as from ours."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "filters": {"redact": {"()": RedactingFilter}}}
    config["handlers"] = {
        name: {**handler, "filters": ["redact"]}
        for name, handler in LOGGING_CONFIG["handlers"].items()
    }
    return config


def app_from_env() -> ServingApp:
    """The uvicorn factory each worker process calls."""
    logger = logging.getLogger("flowship")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return create_app(ServeConfig.model_validate_json(os.environ[CONFIG_ENV]))
