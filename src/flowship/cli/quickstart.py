"""``flowship quickstart``: the guided tour of the seed's workflow on generated data."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from flowship.cli import _render
from flowship.cli._app import app
from flowship.cli._render import print_table


@app.command()
def quickstart(
    model: Annotated[str, typer.Option(help="Name to register the two models under.")] = (
        "ChurnPredictor"
    ),
) -> None:
    """Run the guided tour: churn data, two models, gates, promotion, rollback, history."""
    import logging

    import mlflow  # noqa: F401  configures its loggers; quiet them after

    from flowship.config import get_settings
    from flowship.quickstart import Tour, run
    from flowship.registry._state import check_name

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    started = time.perf_counter()
    settings = get_settings()
    _render.out.print(f"flowship quickstart in {settings.home_dir}", style="bold", markup=False)
    tour = Tour(
        home=settings.home_dir,
        model=check_name(model),
        say=lambda text: _render.out.print(text, markup=False),
        heading=lambda text: _render.out.print(f"\n{text}", style="bold", markup=False),
        show=print_table,
    )
    run(tour)
    _render.out.print(
        f"\nDone in {time.perf_counter() - started:.1f}s. Try: flowship versions {tour.model}, "
        f"flowship history {tour.model}, flowship rollback {tour.model}.",
        markup=False,
    )
