"""flowship's command line: the one place that turns errors into exit codes.

Exit codes: 0 success, 1 a check that said no (a gate, a monitor alert), 2 a usage
problem, something not found, or an unreachable store. An unexpected error prints one
line and exits 3; ``FLOWSHIP_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn

from flowship.cli._app import app
from flowship.errors import CheckFailed, FlowshipError

# Each module registers its commands on ``app`` when imported.
from flowship.cli import info  # noqa: E402,F401  isort: skip
from flowship.cli import lifecycle  # noqa: E402,F401  isort: skip
from flowship.cli import quickstart  # noqa: E402,F401  isort: skip
from flowship.cli import requests  # noqa: E402,F401  isort: skip
from flowship.cli import score  # noqa: E402,F401  isort: skip
from flowship.cli import monitor  # noqa: E402,F401  isort: skip
from flowship.cli import serve  # noqa: E402,F401  isort: skip
from flowship.cli import export  # noqa: E402,F401  isort: skip
from flowship.cli import package  # noqa: E402,F401  isort: skip
from flowship.cli import ci  # noqa: E402,F401  isort: skip
from flowship.cli import card  # noqa: E402,F401  isort: skip
from flowship.cli import deployment  # noqa: E402,F401  isort: skip
from flowship.cli import experiments  # noqa: E402,F401  isort: skip
from flowship.cli import rollout  # noqa: E402,F401  isort: skip


def exit_code(error: FlowshipError) -> int:
    return 1 if isinstance(error, CheckFailed) else 2


def main(argv: list[str] | None = None) -> None:
    # MLflow retries an unreachable server for minutes by default; a CLI user wants the
    # answer in seconds. The CLI owns its process (an embedding program keeps its own
    # settings); a value the user set explicitly wins.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # typer handles its own usage errors (exit 2) and Ctrl-C; everything else lands here.
    try:
        app(args=argv, prog_name="flowship")
    except FlowshipError as error:
        _print_error(error)
        sys.exit(exit_code(error))
    except Exception as unexpected:  # the one place that must never show a traceback
        if os.environ.get("FLOWSHIP_DEBUG") == "1":
            raise
        from flowship.redact import redact

        sys.stderr.write(
            f"error: unexpected {type(unexpected).__name__}: {redact(str(unexpected))}\n"
            "Re-run with FLOWSHIP_DEBUG=1 to see the traceback, and please report it.\n"
        )
        sys.exit(3)


def run() -> NoReturn:
    """The ``flowship`` console script: :func:`main`, then a fast exit.

    Once a command is done, the interpreter's teardown (freeing the modules of pyarrow,
    pandas, SQLAlchemy, ONNX Runtime and the rest one by one) takes 0.2-0.3 s, a fifth of
    a warm ``flowship score``, and does nothing a finished command needs. So the process ends
    with ``os._exit`` after what a normal exit does that matters: atexit handlers (which
    include logging's flush) and flushing stdout and stderr. mypy exits the same way.
    ``main`` itself exits normally, so calling it in-process (the tests) is unaffected."""
    try:
        main()
        code = 0
    except SystemExit as done:
        if isinstance(done.code, str):  # sys.exit("message"): Python prints it, status 1
            sys.stderr.write(done.code + "\n")
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (flowship ... | head)
            stream.flush()
    os._exit(code)


def _print_error(error: FlowshipError) -> None:
    from flowship.cli._render import err
    from flowship.redact import redact

    err.print(f"error: {redact(error.message)}", markup=False)
    if error.hint:
        err.print(redact(error.hint), markup=False)
