"""The templates shipped with the package (nothing is fetched at run time)."""

from __future__ import annotations

from importlib.resources import files
from string import Template


def render(name: str, **values: str) -> str:
    """Template ``templates/NAME`` with ``${key}`` placeholders filled; a missing value
    is a KeyError (a bug here, not the user's input)."""
    text = (files("flowship.packaging") / "templates" / name).read_text(encoding="utf-8")
    return Template(text).substitute(values)
