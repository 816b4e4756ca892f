"""Finding credentials in values bound for a ConfigMap or a generated file.

ConfigMaps are readable by anyone who can read the namespace and end up in Git with the
rest of the manifests, so a job file or a setting holding a password, token or webhook
secret must not be copied into one. The rule is one function, used by every generator
(``flowship k8s``, ``flowship schedule --export-cronjob``).
"""

from __future__ import annotations

import re
from typing import Any

from flowship.errors import UsageError

# scheme://user:password@host (SQLAlchemy, PostgreSQL, HTTP URLs with a password)
_URL_WITH_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@")
# Incoming-webhook URLs carry their secret in the path.
_WEBHOOK = re.compile(r"^https?://", re.IGNORECASE)
_SECRET_NAME = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)",
    re.IGNORECASE,
)


def find_credentials(data: Any, path: str = "") -> list[str]:
    """Where ``data`` (YAML-like: mappings, lists, scalars) holds a credential, as
    ``field: why`` strings; the values themselves are never repeated."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and value.strip():
                if _SECRET_NAME.search(str(key)):
                    found.append(f"{where}: a {key} value")
                    continue
                if "webhook" in str(key).lower() and _WEBHOOK.match(value.strip()):
                    found.append(f"{where}: a webhook URL (its path is the secret)")
                    continue
            found.extend(find_credentials(value, where))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(find_credentials(value, f"{path}[{i}]"))
    elif isinstance(data, str) and _URL_WITH_PASSWORD.match(data.strip()):
        found.append(f"{path or 'value'}: a URL with a password")
    return found


def refuse_credentials(source: str, data: Any) -> None:
    """``UsageError`` naming each field of ``data`` that holds a credential."""
    found = find_credentials(data)
    if found:
        raise UsageError(
            f"{source} holds credentials that would be stored in plain text in a "
            f"ConfigMap: {'; '.join(found)}. Nothing was written.",
            "Remove them from the file and give them to the container from a Secret "
            "(--secret NAME; e.g. PGPASSWORD for a PostgreSQL URL without its password, "
            "FLOWSHIP_WEBHOOK for alerts).",
        )
