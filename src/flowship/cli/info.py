"""``flowship info``: where flowship keeps everything, as this process sees it."""

from __future__ import annotations

from typing import Annotated

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the stores flowship uses: MLflow tracking URI, state database, Delta tables."""
    from flowship import __version__
    from flowship.config import get_settings
    from flowship.redact import redact

    s = get_settings()
    rows = {
        "version": __version__,
        "home": str(s.home_dir),
        "tracking_uri": redact(s.resolved_tracking_uri),
        "database_url": redact(s.resolved_database_url),
        "tables_uri": redact(s.resolved_tables_uri),
    }
    if as_json:
        print_json(rows)
    else:
        print_table(None, ["setting", "value"], rows.items())
