"""The root typer application that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="flowship",
    help="Take MLflow models to production: gated promotion, rollback, serving, "
    "batch scoring and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Keep ``flowship COMMAND`` a group even while only one command is registered."""
