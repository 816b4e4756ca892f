"""Who is acting: the user the MLflow server authenticates, else the OS user.

With a tracking server that authenticates (MLflow's basic-auth app, or a server behind
a proxy that does), the actor is the user the server knows from the credentials MLflow's
client sends; nothing on the command line can change it. With a local store it is the
operating-system user of the process, read from its uid (not from ``$USER``, which any
shell can set). ``FLOWSHIP_ACTOR`` may rename a local actor in the history of plain
changes, but never where a sign-off rule decides (requests, approvals, rejections,
forced promotions of a model that needs approvals): there only a verified name counts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flowship._mlflow import authenticated_user
from flowship.config import get_settings

log = logging.getLogger(__name__)

MLFLOW, OS, ENV = "mlflow", "os", "env"


@dataclass(frozen=True)
class Identity:
    name: str
    source: str  # MLFLOW (checked by the tracking server), OS (the process's uid), ENV

    @property
    def verified(self) -> bool:
        return self.source != ENV


def os_user() -> str:
    """The name of the process's effective uid (``$USER`` is not consulted)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry (some containers), or Windows
        return f"uid:{os.geteuid()}" if hasattr(os, "geteuid") else "unknown"


def verified() -> Identity:
    """The acting user as the MLflow server (or, locally, the OS) knows them."""
    user = authenticated_user()
    if user is not None:
        return Identity(user, MLFLOW)
    return Identity(os_user(), OS)


def current() -> Identity:
    """The actor recorded for a plain change: ``verified()``, except that a local
    ``FLOWSHIP_ACTOR`` renames it (it is ignored against an authenticating server)."""
    found = verified()
    configured = get_settings().actor
    if configured and found.source == OS:
        return Identity(configured, ENV)
    if configured and configured != found.name:
        log.warning(
            "FLOWSHIP_ACTOR=%s is ignored: the MLflow server authenticates you as %s.",
            configured,
            found.name,
        )
    return found
