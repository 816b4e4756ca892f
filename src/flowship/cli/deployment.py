"""``flowship deployment apply/list/show/history`` and ``flowship traffic``.

Each command parses, makes one call into ``flowship.deployments`` and renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table, say

group = typer.Typer(
    name="deployment",
    help="Recorded deployments: weighted variants, shadows, a sticky key, a prediction log.",
    no_args_is_help=True,
)
app.add_typer(group)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why: kept in the history.")]


@group.command("apply")
def apply_(
    file: Annotated[Path, typer.Argument(help="A deployment YAML file.")],
    expect_revision: Annotated[
        int | None,
        typer.Option(help="Refuse unless the deployment is at this revision (0: new)."),
    ] = None,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate FILE and record it as the deployment's newest revision."""
    from flowship.deployments import DeploymentSpec, apply

    revision = apply(DeploymentSpec.from_yaml(file), expect_revision=expect_revision, reason=reason)
    if as_json:
        print_json(revision.to_dict())
        return
    if not revision.changes:
        say(f"{revision.name}: unchanged, still revision {revision.revision}.")
    else:
        say(f"{revision.name}: revision {revision.revision} recorded ({_changes(revision)}).")


@group.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every deployment with its newest revision and traffic."""
    from flowship.deployments import list_deployments

    found = list_deployments()
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        say("No deployments yet. Record one: flowship deployment apply FILE")
    print_table(
        None,
        ["deployment", "revision", "traffic", "shadows", "key", "changed", "by"],
        [
            (
                r.name,
                r.revision,
                _weights(r.spec.weights),
                ", ".join(r.spec.shadows),
                r.spec.key or "",
                r.at.strftime("%Y-%m-%d %H:%M:%S"),
                r.actor,
            )
            for r in found
        ],
    )


@group.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    as_json: JsonOption = False,
) -> None:
    """A deployment's newest revision: its variants, refs, weights, key and log."""
    from flowship.deployments import current

    revision = current(name)
    if as_json:
        print_json(revision.to_dict())
        return
    spec = revision.spec
    print_table(
        f"{name} revision {revision.revision} (key: {spec.key or 'none, random per request'}; "
        f"log: {spec.log.table if spec.log else 'off'})",
        ["variant", "role", "ref", "weight", "sample"],
        [
            (
                variant,
                "shadow" if v.shadow else "primary",
                spec.uri_of(variant),
                "" if v.shadow else f"{v.weight:g}",
                f"{v.sample:g}" if v.shadow else "",
            )
            for variant, v in spec.variants.items()
        ],
    )


@group.command("history")
def history_(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    as_json: JsonOption = False,
) -> None:
    """Every revision: who, when, why and what changed."""
    from flowship.deployments import history

    found = history(name)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    print_table(
        name,
        ["revision", "action", "at", "by", "reason", "changes"],
        [
            (
                r.revision,
                r.action,
                r.at.strftime("%Y-%m-%d %H:%M:%S"),
                r.actor,
                r.reason or "",
                _changes(r),
            )
            for r in found
        ],
    )


@app.command()
def traffic(
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    weights: Annotated[
        list[str] | None, typer.Argument(help="VARIANT=WEIGHT ..., summing to 100.")
    ] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Return to the previous revision.")] = False,
    expect_revision: Annotated[
        int | None, typer.Option(help="Refuse unless the deployment is at this revision.")
    ] = None,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a deployment's traffic split (a new revision); servers follow within their
    poll interval. Weight-0 variants stay loaded: blue-green is `traffic NAME green=100 blue=0`."""
    from flowship import deployments
    from flowship.errors import UsageError

    if undo and weights:
        raise UsageError("Give weights or --undo, not both.", f"flowship traffic {name} --undo")
    if undo:
        revision = deployments.undo(name, reason=reason)
    else:
        revision = deployments.set_traffic(
            name,
            deployments.parse_weights(weights or []),
            reason=reason,
            expect_revision=expect_revision,
        )
    if as_json:
        print_json(revision.to_dict())
        return
    say(
        f"{name}: revision {revision.revision}, traffic {_weights(revision.spec.weights)} "
        f"({_changes(revision)})."
    )


def _weights(weights: dict[str, float]) -> str:
    return " ".join(f"{n}={w:g}" for n, w in weights.items())


def _changes(revision: Any) -> str:
    return "; ".join(revision.changes) or "no change"
