"""``flowship card NAME VERSION``: the model card of a version (HTML or Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, say


@app.command("card")
def card(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write [NAME-vVERSION-card.html|.md]."),
    ] = None,
    markdown: Annotated[bool, typer.Option("--md", help="Markdown instead of HTML.")] = False,
    log: Annotated[
        bool, typer.Option("--log", help="Also log it as an artifact of the version's run.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the card's data as JSON; write nothing.")
    ] = False,
) -> None:
    """Purpose, limitations, signature, training, gate evidence, lineage, stage history and
    monitoring of one version, from the registry and flowship's records. Offline HTML."""
    if as_json:
        from flowship.packaging.card import collect

        print_json(collect(name, version))
        return
    from flowship.packaging.card import write_card

    result = write_card(name, version, out, markdown=markdown, log=log)
    for warning in result.warnings:
        say(f"warning: {warning}")
    say(f"Wrote the model card of {result.name} version {result.version} to {result.path}.")
    if result.logged_as:
        say(f"Logged it to the version's run as {result.logged_as} (tag flowship.card).")
