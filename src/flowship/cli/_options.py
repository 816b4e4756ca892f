"""Parsing of option values shared by several commands."""

from __future__ import annotations


def env_pairs(values: list[str] | None) -> dict[str, str]:
    """``--env KEY=VALUE`` options as a mapping."""
    from flowship.errors import UsageError

    pairs = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--env {value!r} is not KEY=VALUE.", "Use --env KEY=VALUE.")
        pairs[key.strip()] = text
    return pairs
