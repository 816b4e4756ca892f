"""flowship's command line: the one place that turns errors into exit codes.

Exit codes: 0 success, 1 a check that said no (a gate, a monitor alert), 2 a usage
problem, something not found, or an unreachable store. An unexpected error prints one
line and exits 3; ``FLOWSHIP_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import os
import sys

from flowship.cli._app import app
from flowship.errors import CheckFailed, FlowshipError

# Each module registers its commands on ``app`` when imported.
from flowship.cli import info  # noqa: E402,F401  isort: skip
from flowship.cli import lifecycle  # noqa: E402,F401  isort: skip
from flowship.cli import quickstart  # noqa: E402,F401  isort: skip
from flowship.cli import score  # noqa: E402,F401  isort: skip
from flowship.cli import monitor  # noqa: E402,F401  isort: skip
from flowship.cli import serve  # noqa: E402,F401  isort: skip


def exit_code(error: FlowshipError) -> int:
    return 1 if isinstance(error, CheckFailed) else 2


def main(argv: list[str] | None = None) -> None:
    # typer handles its own usage errors (exit 2) and Ctrl-C; everything else lands here.
    try:
        app(args=argv, prog_name="flowship")
    except FlowshipError as error:
        _print_error(error)
        sys.exit(exit_code(error))
    except Exception as unexpected:  # the one place that must never show a traceback
        if os.environ.get("FLOWSHIP_DEBUG") == "1":
            raise
        sys.stderr.write(
            f"error: unexpected {type(unexpected).__name__}: {unexpected}\n"
            "Re-run with FLOWSHIP_DEBUG=1 to see the traceback, and please report it.\n"
        )
        sys.exit(3)


def _print_error(error: FlowshipError) -> None:
    from flowship.cli._render import err

    err.print(f"error: {error.message}", markup=False)
    if error.hint:
        err.print(error.hint, markup=False)
