"""Reading a model's stage signals from MLflow and writing them back.

A version's stage shows up in MLflow three ways: the ``staging``/``production``
aliases, the ``flowship.stage`` version tag, and MLflow's native (deprecated) stage.
flowship writes all three together; ``sync.py`` compares them with the history to
notice changes made outside flowship.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowship._mlflow import client as mlflow_client
from flowship._mlflow import mlflow_errors
from flowship.errors import (
    ChangeFailed,
    ModelNotFound,
    PermissionDenied,
    UsageError,
    VersionNotFound,
)
from flowship.registry._types import ALIASES, NONE, PRODUCTION, STAGE_TAG, STAGES, STAGING

# Names end up in URIs (models:/NAME/Production) and MLflow filter strings, so keep
# out the characters that would break either.
_NAME = re.compile(r"^[\w][\w.\- ]{0,254}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"Invalid model name {name!r}.",
            "Use letters, digits, '_', '-', '.' or spaces (at most 255 characters), "
            "e.g. ChurnPredictor.",
        )
    return name


def check_version(name: str, version: object) -> str:
    text = str(version).strip()
    if not text.isdigit() or len(text) > 12:
        raise VersionNotFound(
            name,
            version,
            f"A version is a positive number; list them with: flowship versions {name}",
        )
    return str(int(text))


@dataclass
class Observed:
    """What MLflow says about one version right now."""

    version: str
    native: str
    tag: str | None
    alias_stage: str | None
    aliases: list[str]
    mv: Any  # mlflow ModelVersion

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp((self.mv.creation_timestamp or 0) / 1000, UTC)


def read_model(name: str) -> dict[str, Observed]:
    """Every version of ``name`` with its stage signals, oldest first."""
    check_name(name)
    client = mlflow_client()
    with mlflow_errors(model=name):
        model = client.get_registered_model(name)
        versions = _search_versions(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    observed: dict[str, Observed] = {}
    for mv in sorted(versions, key=lambda v: int(v.version)):
        version = str(mv.version)
        aliases = sorted(by_version.get(version, []))
        alias_stage = next((s for s in (PRODUCTION, STAGING) if ALIASES[s] in aliases), None)
        tag = (mv.tags or {}).get(STAGE_TAG)
        native = getattr(mv, "current_stage", None)
        observed[version] = Observed(
            version=version,
            native=native if native in STAGES else NONE,
            tag=tag if tag in STAGES else None,
            alias_stage=alias_stage,
            aliases=aliases,
            mv=mv,
        )
    return observed


def _search_versions(client, name: str) -> list:
    found, token = [], None
    while True:
        page = client.search_model_versions(f"name='{name}'", max_results=1000, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def has_native_stages() -> bool:
    """Whether the installed MLflow still has model registry stages to mirror onto."""
    return hasattr(mlflow_client(), "transition_model_version_stage")


def write_stage(name: str, version: str, stage: str, current: dict[str, Observed]) -> None:
    """Make MLflow show ``version`` in ``stage``: aliases, version tag, native stage.

    ``current`` is the state read before this change; an alias is only removed from
    ``version`` if it still points there (another write may have moved it on already).
    A write MLflow refuses raises ``ChangeFailed`` naming that write.
    """
    client = mlflow_client()
    with _step(name, f"reading the aliases of {name}"):
        model = client.get_registered_model(name)
    holders = {alias: str(v) for alias, v in (model.aliases or {}).items()}
    for held_stage, alias in ALIASES.items():
        if held_stage == stage and holders.get(alias) != version:
            with _step(name, f"moving alias '{alias}' to version {version}"):
                client.set_registered_model_alias(name, alias, version)
        elif held_stage != stage and holders.get(alias) == version:
            with _step(name, f"removing alias '{alias}' from version {version}"):
                client.delete_registered_model_alias(name, alias)
    with _step(name, f"setting tag {STAGE_TAG}={stage} on version {version}"):
        client.set_model_version_tag(name, version, STAGE_TAG, stage)
    seen = current.get(version)
    if has_native_stages() and (seen is None or seen.native != stage):
        with _step(name, f"setting the MLflow stage of version {version} to {stage}"):
            _transition(client, name, version, stage)


def signals(seen: Observed) -> dict[str, Any]:
    """What MLflow shows for one version, as JSON: enough to put it back exactly."""
    return {
        "aliases": [a for a in seen.aliases if a in ALIASES.values()],
        "tag": (seen.mv.tags or {}).get(STAGE_TAG),
        "native": seen.native,
    }


def applied(observed: dict[str, Observed], intended: dict[str, str]) -> bool:
    """Whether MLflow shows every version of a change in its intended stage."""
    return all(v in observed and mirror_agrees(observed[v], s) for v, s in intended.items())


def restore(name: str, before: dict[str, dict[str, Any]], intended: dict[str, str]) -> None:
    """Undo a change, possibly half-written: every signal that shows what the change
    (``intended``: version -> stage) wrote is put back to ``before`` (``signals()``
    per version). A signal that shows neither was moved by someone else since, and
    is left alone for the next look to record."""
    client = mlflow_client()
    observed = read_model(name)
    holders = {a: v for v, seen in observed.items() for a in seen.aliases}
    for stage, alias in ALIASES.items():
        was = next((v for v, b in before.items() if alias in b["aliases"]), None)
        meant = next((v for v, s in intended.items() if s == stage), None)
        if was == meant or holders.get(alias) != meant:
            continue
        if was is not None:
            with _step(name, f"moving alias '{alias}' back to version {was}"):
                client.set_registered_model_alias(name, alias, was)
        else:
            with _step(name, f"removing alias '{alias}' again"):
                client.delete_registered_model_alias(name, alias)
    native = has_native_stages()
    for version, old in before.items():
        seen, stage = observed.get(version), intended[version]
        if seen is None:  # deleted since: nothing to put back
            continue
        if (seen.mv.tags or {}).get(STAGE_TAG) == stage != old["tag"]:
            with _step(name, f"putting tag {STAGE_TAG} of version {version} back"):
                if old["tag"] is None:
                    client.delete_model_version_tag(name, version, STAGE_TAG)
                else:
                    client.set_model_version_tag(name, version, STAGE_TAG, old["tag"])
        if native and seen.native == stage != old["native"]:
            back = f"setting the MLflow stage of version {version} back to {old['native']}"
            with _step(name, back):
                _transition(client, name, version, old["native"])


@contextmanager
def _step(name: str, step: str) -> Iterator[None]:
    """One MLflow write; whatever it raises becomes ``ChangeFailed`` naming the write."""
    try:
        with mlflow_errors(model=name):
            yield
    except (ModelNotFound, PermissionDenied):  # not a failed write: the user's own answer
        raise
    except Exception as exc:
        raise ChangeFailed(f"MLflow refused {step}: {_cause(exc)}", step=step) from exc


def _cause(exc: Exception) -> str:
    """The database's or server's own words: SQLAlchemy puts advice about autoflush
    before them, and keeps the driver's error in ``orig``."""
    orig, seen = None, exc
    for _ in range(5):  # flowship error <- MlflowException <- SQLAlchemy error
        if seen is None or (orig := getattr(seen, "orig", None)) is not None:
            break
        seen = seen.__cause__ or seen.__context__
    text = str(orig) if orig is not None else str(getattr(exc, "message", exc))
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _transition(client, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():
        # Stages are deprecated in MLflow; the mirror is deliberate, for the seed's URIs.
        warnings.simplefilter("ignore")
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)


def mirror_agrees(observed: Observed, stage: str) -> bool:
    """Whether every signal MLflow shows for this version already says ``stage``."""
    alias_ok = observed.alias_stage == (stage if stage in ALIASES else None)
    native_ok = observed.native == stage or not has_native_stages()
    tag_ok = observed.tag == stage or (observed.tag is None and stage == NONE)
    return alias_ok and native_ok and tag_ok
