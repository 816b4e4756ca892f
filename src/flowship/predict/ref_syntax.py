"""What a model reference says, read in one place: the forms, the registry ref parser
and the resolved result. ``refs`` (MLflow's answer) and ``registry_db`` (the tables'
answer) both start from ``parse_registry_ref``, so they cannot read a ref differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from flowship.errors import UsageError

# Native stage names, matched case-insensitively as MLflow does.
STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
FORMS = (
    "models:/NAME@alias, models:/NAME/Stage, models:/NAME/3, models:/NAME/latest, "
    "runs:/RUN_ID/PATH or a local directory"
)
_VERSION = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ResolvedRef:
    """Where a reference points right now. ``uri`` is what to load: ``models:/NAME/3`` for
    registry refs (so a later promotion cannot change what was loaded), else the ref itself."""

    ref: str
    uri: str
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    source: str | None = None

    @classmethod
    def registry_version(
        cls, ref: str, name: str, version: object, run_id: str | None, source: str | None
    ) -> ResolvedRef:
        """``ref`` pinned to registry version ``version`` of model ``name``."""
        return cls(ref, f"models:/{name}/{version}", name, str(version), run_id or None, source)


@dataclass(frozen=True)
class RegistryRef:
    """A ``models:/`` ref taken apart: ``kind`` says what ``value`` is (a version
    number, an alias, a canonical stage name, or empty for ``latest``)."""

    name: str
    kind: Literal["version", "alias", "stage", "latest"]
    value: str


def parse_registry_ref(ref: str) -> RegistryRef:
    """Read ``models:/NAME@alias``, ``models:/NAME/3``, ``/Stage`` or ``/latest``;
    ``UsageError`` naming the forms if ``ref`` is none of them."""
    body = ref[len("models:/") :] if ref.startswith("models:/") else None
    if body is not None and "@" in body:
        name, _, alias = body.partition("@")
        if name and alias and "/" not in name and "/" not in alias:
            return RegistryRef(name, "alias", alias)
    elif body is not None:
        name, _, selector = body.partition("/")
        if name and selector and "/" not in selector:
            if _VERSION.match(selector):
                return RegistryRef(name, "version", selector)
            if selector.lower() == "latest":
                return RegistryRef(name, "latest", "")
            if selector.lower() in STAGES:
                return RegistryRef(name, "stage", STAGES[selector.lower()])
            raise UsageError(
                f"Malformed model reference {ref!r}: {selector!r} is neither a version number, "
                "'latest' nor a stage (None, Staging, Production, Archived).",
                f"Use one of: {FORMS}.",
            )
    raise UsageError(f"Malformed model reference {ref!r}.", f"Use one of: {FORMS}.")
