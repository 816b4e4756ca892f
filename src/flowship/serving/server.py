"""Run the app under uvicorn: one process, or ``workers`` processes sharing the socket.

Each worker builds its own app from the config passed in the environment, loads the
model and follows the ref by itself. On SIGTERM or Ctrl-C uvicorn stops accepting
connections and lets in-flight requests finish (up to ``graceful_timeout_s``) before
the process exits.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from flowship.serving.app import ServingApp, create_app
from flowship.serving.config import ServeConfig

CONFIG_ENV = "FLOWSHIP_SERVE_CONFIG"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve ``config.ref`` until interrupted. Blocks."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.model_dump_json()
    has = importlib.util.find_spec
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
    )


def app_from_env() -> ServingApp:
    """The uvicorn factory each worker process calls."""
    if not logging.getLogger("flowship").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger = logging.getLogger("flowship")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return create_app(ServeConfig.model_validate_json(os.environ[CONFIG_ENV]))
