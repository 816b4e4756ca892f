"""``flowship rollout``: start, status, pause, resume, abort, and the controller ``run``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import err, print_json, print_table

rollout = typer.Typer(
    name="rollout", help="Progressive rollout with guardrails and automatic rollback."
)
app.add_typer(rollout, name="rollout", no_args_is_help=True)

DeploymentArg = Annotated[str, typer.Argument(help="Recorded deployment name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why; recorded.")]


@rollout.command("start")
def start(
    deployment: DeploymentArg,
    candidate: Annotated[str, typer.Option("--candidate", help="Variant to roll out.")],
    steps: Annotated[
        str, typer.Option("--steps", help="Traffic per step, percent: 10,25,50,100.")
    ] = "10,25,50,100",
    bake: Annotated[str, typer.Option("--bake", help="Time per step: 30m, 1d, 7d.")] = "30m",
    guardrail: Annotated[
        list[str] | None,
        typer.Option("--guardrail", help="e.g. error_rate_increase<=0.01 (repeatable)."),
    ] = None,
    min_requests: Annotated[
        int, typer.Option("--min-requests", help="Per variant per step before it can pass.")
    ] = 100,
    champion: Annotated[
        str | None, typer.Option("--champion", help="Default: the variant with most traffic.")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", envvar="FLOWSHIP_WEBHOOK", help="Slack/Teams URL for alerts."),
    ] = None,
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics-url",
            help="A server's /metrics, for the server_* guardrails (repeat per server).",
        ),
    ] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a rollout and send the first step's traffic to the candidate."""
    from flowship.rollout import start as begin

    _show(
        begin(
            deployment,
            candidate=candidate,
            steps=steps,
            bake=bake,
            guardrail=guardrail,
            min_requests=min_requests,
            champion=champion,
            webhook=webhook,
            reason=reason,
            metrics_url=metrics_url,
        ),
        as_json,
    )


@rollout.command("status")
def status(deployment: DeploymentArg, as_json: JsonOpt = False) -> None:
    """The rollout's state, step, guardrails and every action with its reason."""
    from flowship.rollout import status as read

    _show(read(deployment), as_json)


@rollout.command("pause")
def pause(deployment: DeploymentArg, reason: ReasonOpt = None, as_json: JsonOpt = False) -> None:
    """Hold the current step (traffic stays as it is)."""
    from flowship.rollout import pause as hold

    _show(hold(deployment, reason=reason), as_json)


@rollout.command("resume")
def resume(deployment: DeploymentArg, reason: ReasonOpt = None, as_json: JsonOpt = False) -> None:
    """Continue; the current step bakes again from now."""
    from flowship.rollout import resume as go

    _show(go(deployment, reason=reason), as_json)


@rollout.command("abort")
def abort(deployment: DeploymentArg, reason: ReasonOpt = None, as_json: JsonOpt = False) -> None:
    """Stop and send all traffic back to the champion."""
    from flowship.rollout import abort as stop

    _show(stop(deployment, reason=reason), as_json)


@rollout.command("run")
def run(
    deployment: DeploymentArg,
    once: Annotated[bool, typer.Option("--once", help="Evaluate and act once (cron).")] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between evaluations.", min=0.1)
    ] = 30.0,
    lease: Annotated[
        float | None,
        typer.Option("--lease", help="Seconds a silent controller keeps the lease.", min=1),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The controller: waits, steps, rolls back on a breach, promotes at the last step."""
    from flowship.rollout import run as control

    def report(result: dict[str, Any]) -> None:
        if not as_json:
            err.print(f"{result['action']}: {result.get('reason') or ''}", markup=False)

    result = control(deployment, interval=interval, once=once, lease_seconds=lease, on_tick=report)
    if as_json:
        print_json(result)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    steps = ", ".join(f"{s:g}%" for s in view["steps"])
    print_table(
        f"Rollout of {view['candidate']} on {view['deployment']} (champion {view['champion']})",
        ["state", "step", "weight", "steps", "bake s", "guardrails", "revision"],
        [
            [
                view["state"],
                f"{view['step']}/{len(view['steps'])}",
                f"{view['weight']:g}%",
                steps,
                f"{view['bake_seconds']:g}",
                ", ".join(view["guardrails"]),
                view["revision"],
            ]
        ],
    )
    print_table(
        "History",
        ["at", "action", "step", "weight", "revision", "reason"],
        [
            [
                e["at"][:19],
                e["action"],
                e["step"],
                "" if e["weight"] is None else f"{e['weight']:g}%",
                e["revision"],
                e["reason"],
            ]
            for e in view["events"]
        ],
    )
