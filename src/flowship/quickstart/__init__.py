"""``flowship quickstart``: the seed's workflow end to end on generated churn data.

The tour is a list of small steps. Each step is a function that explains what it
does in a sentence, does it through the public API, and returns. Steps run in order;
each area owns its step functions in its own module under ``flowship/quickstart/``.

To add a step, write the function in your module and add ONE line to ``STEPS`` below,
naming it as ``"module:function"`` (imported only when the tour runs) with optional
keyword arguments, e.g.::

    Step("Serve the Production model", "flowship.quickstart.serve_step:serve_step",
         {"ref": "models:/ChurnPredictor@production"}),

A function whose first parameter is named ``tour`` is called as ``fn(tour, **kwargs)``
and can use everything on ``Tour`` (paths of the generated data, the versions
registered, ``tour.shared`` to pass things to later steps). Any other function is
called as ``fn(say=tour.say, **kwargs)``: ``say`` prints one plain-text sentence.

A step must be re-runnable in the same FLOWSHIP_HOME and quick (the whole tour stays
well under a minute).
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Step:
    title: str
    target: str  # "package.module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, tour: Tour) -> None:
        module, _, name = self.target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        params = list(inspect.signature(fn).parameters)
        if params and params[0] == "tour":
            fn(tour, **self.kwargs)
        else:
            fn(say=tour.say, **self.kwargs)


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """Default output: none (the CLI passes its own printers)."""


@dataclass
class Tour:
    """What the steps share: where files go, what was registered, and how to talk."""

    home: Path
    model: str = "ChurnPredictor"
    say: Callable[[str], None] = _quiet
    heading: Callable[[str], None] = _quiet
    show: Callable[[str | None, Sequence[str], Sequence[Sequence[Any]]], None] = _quiet
    versions: dict[str, str] = field(default_factory=dict)  # "baseline"/"candidate" -> version
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        path = self.home / "quickstart"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def train_path(self) -> Path:
        return self.workdir / "churn_train.parquet"

    @property
    def eval_path(self) -> Path:
        return self.workdir / "churn_eval.parquet"

    @property
    def customers_path(self) -> Path:
        """New customers without labels, for scoring."""
        return self.workdir / "customers.parquet"

    @property
    def config_path(self) -> Path:
        return self.workdir / "flowship.toml"


STEPS: list[Step] = [
    Step("Generate churn data", "flowship.quickstart.lifecycle:generate_data"),
    Step("Train and register two models", "flowship.quickstart.lifecycle:train_and_register"),
    Step("Declare the gates", "flowship.quickstart.lifecycle:write_gates"),
    Step("Promote the baseline to Production", "flowship.quickstart.lifecycle:promote_baseline"),
    Step("Gated promotion of the candidate", "flowship.quickstart.lifecycle:promote_candidate"),
    Step("Roll back", "flowship.quickstart.lifecycle:roll_back"),
    Step("Serve the Production model", "flowship.quickstart.serve_step:serve_step"),
    Step("A/B test: a 90/10 sticky split", "flowship.quickstart.ab_step:ab_step"),
    Step("Score the customers in batch", "flowship.quickstart.score_step:score_step"),
    Step("Check for data drift", "flowship.quickstart.monitor_step:drift_step"),
    Step("Read the history", "flowship.quickstart.lifecycle:show_history"),
]


def run(tour: Tour, steps: Sequence[Step] | None = None) -> list[tuple[str, float]]:
    """Run every step in order; returns (title, seconds) per step."""
    timings = []
    for number, step in enumerate(steps or STEPS, start=1):
        tour.heading(f"{number}. {step.title}")
        started = time.perf_counter()
        step(tour)
        timings.append((step.title, time.perf_counter() - started))
    return timings
