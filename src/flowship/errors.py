"""Every expected failure in flowship is a ``FlowshipError``.

Each error carries a ``message`` (what went wrong, naming what was received) and a
``hint`` (how to fix it). The CLI prints both on one line each without a traceback; the
server answers with a JSON body. Exit codes and HTTP statuses are chosen at those edges
(``flowship.cli`` and ``flowship.serving``), not here.

    FlowshipError
    ├── UsageError              bad arguments or a malformed file             exit 2 / 400
    │   ├── ConfigError         flowship.toml, a job or deployment file
    │   └── InvalidInput        data that cannot be used (schema, types, size)
    │       ├── SchemaMismatch  input that does not match a model signature
    │       └── ScoringFailed   the model's own code raised on this input     (server: 500)
    ├── NotFound                                                              exit 2 / 404
    │   ├── ModelNotFound
    │   └── VersionNotFound
    ├── IllegalTransition       a stage change the lifecycle does not allow   exit 2 / 409
    ├── ConcurrentChange        state moved under us (compare-and-swap lost)  exit 2 / 409
    ├── ChangeFailed            a write failed half-way; the rest was undone  exit 2 / 503
    ├── PermissionDenied        the acting user may not do this               exit 2 / 403
    │   └── NotAuthenticated    missing or wrong credentials for MLflow       exit 2 / 401
    ├── Unavailable             a store, server or database cannot be reached exit 2 / 503
    ├── MissingExtra            an optional dependency is not installed      exit 2 / 500
    └── CheckFailed             a check ran and said no                      exit 1 / 422
        ├── GateFailed          a promotion gate refused a version
        ├── AlertFired          a monitor raised an alert
        └── ExperimentFailed    an A/B report: candidate worse, or the split broken
"""

from __future__ import annotations

from typing import Any


class FlowshipError(Exception):
    """Root of flowship's errors: a message and a hint that says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class UsageError(FlowshipError):
    """The caller asked for something malformed."""


class ConfigError(UsageError):
    """A configuration file (flowship.toml, a job or deployment file) is invalid."""

    def __init__(self, path: object, problem: str, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}", hint)


class InvalidInput(UsageError):
    """Data that cannot be used: wrong shape, wrong types, too large, empty."""


class SchemaMismatch(InvalidInput):
    """Input that does not match the model's signature."""


class ScoringFailed(InvalidInput):
    """The model's own code raised on an input that passed the signature checks. The
    server answers 500 with ``exc_type`` only: the text may hold data or secrets."""

    def __init__(self, message: str, hint: str | None = None, *, exc_type: str = "") -> None:
        self.exc_type = exc_type
        super().__init__(message, hint)


class NotFound(FlowshipError):
    """Something named does not exist."""


class ModelNotFound(NotFound):
    def __init__(self, name: str, hint: str | None = None) -> None:
        self.name = name
        super().__init__(
            f"Model {name!r} is not registered.",
            hint or "List registered models with: flowship models",
        )


class VersionNotFound(NotFound):
    def __init__(self, name: str, version: object, hint: str | None = None) -> None:
        self.name = name
        self.version = str(version)
        super().__init__(
            f"Model {name!r} has no version {self.version}.",
            hint or f"List its versions with: flowship versions {name}",
        )


class IllegalTransition(FlowshipError):
    """A stage change that the lifecycle does not allow."""


class ConcurrentChange(FlowshipError):
    """The state changed under us; the operation was refused and nothing was changed."""


class ChangeFailed(FlowshipError):
    """A store refused one write of a multi-step change; ``step`` names that write. The
    message says whether the writes already made were put back."""

    def __init__(self, message: str, hint: str | None = None, *, step: str) -> None:
        self.step = step
        super().__init__(message, hint)


class PermissionDenied(FlowshipError):
    """The acting user may not do this: MLflow refused the write, or a sign-off rule
    (separation of duties, the approver or admin list) says no. Nothing was changed."""


class NotAuthenticated(PermissionDenied):
    """The MLflow server did not accept the credentials (or got none)."""


class Unavailable(FlowshipError):
    """A store, server or database cannot be reached."""


class MissingExtra(FlowshipError):
    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"This needs {package}, which is not installed.",
            f"Install it with: pip install 'flowship[{extra}]'",
        )


class CheckFailed(FlowshipError):
    """A check ran and its answer was no (exit code 1, not a usage problem)."""


class GateFailed(CheckFailed):
    """A promotion gate refused a version; ``results`` holds every gate's outcome."""

    def __init__(self, message: str, results: list[Any], hint: str | None = None) -> None:
        self.results = results
        super().__init__(message, hint)


class AlertFired(CheckFailed):
    """A monitor raised at least one alert."""


class ExperimentFailed(CheckFailed):
    """An A/B report found the candidate significantly worse (or, as a gate, not better),
    or the traffic split does not match the weights; ``report`` is its JSON form."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(message)
