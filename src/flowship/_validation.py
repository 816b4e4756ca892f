"""The one formatter from a pydantic ``ValidationError`` to flowship's one-line message.

Every file flowship reads (job files, ``flowship.toml`` gates, monitor files, the
serve/deployment file) and the command-line options validated with the same models
say what is wrong the same way: the field as the user wrote it, what is wrong with
it, and what was received, every problem on one line:

    field 'engine': Input should be 'local' or 'spark' (got 'gpu'); field 'id' is required

``config_error`` wraps that in a ``ConfigError`` naming the file; the hint (where the
fields are documented) is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from flowship.errors import ConfigError

#: Problems listed in one message; the rest are counted.
MAX_PROBLEMS = 5
_MAX_SHOWN = 60


def describe(
    exc: ValidationError, *, name: Callable[[str], str] = lambda where: f"field {where!r}"
) -> str:
    """Every problem in ``exc`` on one line. ``name`` turns a dotted location into how
    the user wrote it (``field 'drift.method'`` by default; ``option '--port'`` for
    command-line options)."""
    errors = exc.errors()
    problems = [_problem(error, name) for error in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more")
    return "; ".join(problems)


def config_error(source: object, exc: ValidationError, hint: str | None = None) -> ConfigError:
    """A ``ConfigError`` for file ``source`` listing every problem in ``exc``."""
    return ConfigError(source, describe(exc), hint)


def _problem(error: Any, name: Callable[[str], str]) -> str:
    if not error["loc"]:  # a rule across the whole file: the message names the fields
        return error["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown {name(where)}"
    if error["type"] == "missing":
        return f"{name(where)} is required"
    message = error["msg"].removeprefix("Value error, ")
    received = error.get("input")
    if isinstance(received, dict):  # a rule across a section's fields: the message says it
        return f"{name(where)}: {message}"
    shown = repr(received) if not isinstance(received, list) else "a list"
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return f"{name(where)}: {message} (got {shown})"
