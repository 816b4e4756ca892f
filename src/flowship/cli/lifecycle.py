"""Lifecycle commands: models, versions, register, promote, history, rollback.

Each command parses, makes one call into ``flowship.registry`` and renders; heavy
imports stay inside the functions so ``flowship --help`` is instant.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table, say
from flowship.errors import UsageError

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def age(when: datetime | None, now: datetime | None = None) -> str:
    """``"42s"``, ``"5m"``, ``"3h"``, ``"12d"``: how long ago, for tables."""
    if when is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _metrics(metrics: dict[str, float], limit: int = 4) -> str:
    shown = [f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:limit]]
    if len(metrics) > limit:
        shown.append(f"+{len(metrics) - limit} more")
    return ", ".join(shown)


@app.command()
def models(as_json: JsonOption = False) -> None:
    """List registered models with their newest version and who is in Staging/Production."""
    from flowship.registry import list_models

    found = list_models()
    if as_json:
        print_json([m.to_dict() for m in found])
        return
    if not found:
        say("No registered models yet. Register one: flowship register SOURCE --name NAME")
    print_table(
        None,
        ["model", "versions", "latest", "production", "staging", "updated"],
        [
            (m.name, m.versions, m.latest_version, m.production, m.staging, age(m.updated_at))
            for m in found
        ],
    )


@app.command()
def versions(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: JsonOption = False,
) -> None:
    """List a model's versions: stage, aliases, age and run metrics."""
    from flowship.registry import list_versions

    found = list_versions(name)
    if as_json:
        print_json([v.to_dict() for v in found])
        return
    print_table(
        name,
        ["version", "stage", "aliases", "age", "metrics", "run"],
        [
            (
                v.version,
                v.stage,
                ", ".join(v.aliases),
                age(v.created_at),
                _metrics(v.metrics),
                (v.run_id or "")[:8],
            )
            for v in found
        ],
    )


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"Cannot read tag {pair!r}.", "Write --tag KEY=VALUE.")
        tags[key.strip()] = value
    return tags


@app.command()
def register(
    source: Annotated[
        str,
        typer.Argument(help="runs:/RUN_ID/PATH, models:/NAME/VERSION or a local MLflow model dir."),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name to register under.")],
    description: Annotated[str | None, typer.Option(help="Version description.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE version tag (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a new model version from an MLflow run, a model URI or a local directory."""
    from flowship.registry import register as register_version

    info = register_version(source, name, description=description, tags=_tags(tag or []))
    if as_json:
        print_json(info.to_dict())
        return
    say(f"Registered {info.name} version {info.version} (stage None) from {source}.")
    say(f"Next: flowship promote {info.name} {info.version} --to staging")


def _gate_rows(results: list[Any]) -> list[tuple[Any, ...]]:
    return [("pass" if r.passed else "FAIL", r.name, r.value, r.limit, r.detail) for r in results]


def print_gates(results: list[Any]) -> None:
    print_table("Gates", ["result", "gate", "value", "limit", "detail"], _gate_rows(results))


def _split_ab_gates(model: str, gates: list[str], config: str | None) -> tuple[list[str], list]:
    """``ab:METRIC`` gates are judged by the A/B report (monitoring); the rest by the
    registry's own gates."""
    from flowship.monitoring.experiments.gate import ab_gates, is_ab_gate

    if not any(is_ab_gate(g) for g in gates):
        return gates, []
    return [g for g in gates if not is_ab_gate(g)], ab_gates(model, gates, config=config)


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to move.")],
    to: Annotated[str, typer.Option("--to", help="staging, production, archived or none.")],
    expect_current: Annotated[
        str | None,
        typer.Option(help="Refuse unless Production is this version ('none': no version)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Bypass failed gates (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the history.")] = None,
    no_archive: Annotated[
        bool, typer.Option("--no-archive", help="Send the replaced version to None, not Archived.")
    ] = False,
    config: Annotated[str | None, typer.Option(help="flowship.toml to read gates from.")] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra gate METRIC>=VALUE or METRIC<=VALUE, or ab:METRIC (the live A/B test)."
        ),
    ] = None,
    no_regression: Annotated[
        list[str] | None,
        typer.Option(help="METRIC[:TOLERANCE]: not worse than Production on the same data."),
    ] = None,
    require_signature: Annotated[
        bool, typer.Option(help="Refuse a version without signature.")
    ] = False,
    checklist: Annotated[
        list[str] | None, typer.Option(help="Checklist item that must be done.")
    ] = None,
    confirm: Annotated[
        list[str] | None, typer.Option(help="Checklist item you confirm is done.")
    ] = None,
    eval_data: Annotated[str | None, typer.Option(help="Evaluation data (Parquet or CSV).")] = None,
    target: Annotated[
        str | None, typer.Option(help="Target column in the evaluation data.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move a version to another stage, through the gates for Staging and Production."""
    from flowship.errors import GateFailed
    from flowship.registry import GateResult
    from flowship.registry import promote as promote_version

    gate, experiments = _split_ab_gates(name, gate or [], config)
    try:
        t = promote_version(
            name,
            version,
            to,
            expect_current=expect_current,
            force=force,
            reason=reason,
            archive_previous=not no_archive,
            confirm=confirm or [],
            config=config,
            gates=gate or None,
            no_regression=no_regression,
            require_signature=require_signature,
            checklist=checklist,
            evaluation_data=eval_data,
            target=target,
            extra_gates=experiments,
        )
    except GateFailed as failed:
        if as_json:
            print_json({"promoted": False, "gates": [r.to_dict() for r in failed.results]})
        else:
            print_gates(failed.results)
        raise
    from flowship.registry import PromotionRequest

    if isinstance(t, PromotionRequest):
        if as_json:
            print_json({"promoted": False, "request": t.to_dict()})
            return
        if t.gates:
            print_gates([GateResult(**g) for g in t.gates])
        from flowship.cli.requests import say_request

        say_request(t)
        return
    if as_json:
        print_json({"promoted": True, **t.to_dict()})
        return
    if t.gates:
        print_gates(t.gates)
    say_transition(t, "Promoted")


def say_transition(t: Any, verb: str) -> None:
    replaced = ""
    if t.previous:
        replaced = f"; version {t.previous} moved to {t.events[-1].to_stage}"
    forced = " (forced: gates bypassed)" if t.forced and any(not g.passed for g in t.gates) else ""
    say(f"{verb} {t.name} version {t.version}: {t.from_stage} -> {t.to_stage}{replaced}.{forced}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    to: Annotated[
        str | None, typer.Option(help="Version to put back (default: by history).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Put back the version that was in Production before the current one."""
    from flowship.registry import rollback as rollback_model

    t = rollback_model(name, to=to, reason=reason)
    if as_json:
        print_json(t.to_dict())
        return
    say_transition(t, "Rolled back")


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    at: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time (UTC if no zone): which version was in the stage then."),
    ] = None,
    stage: Annotated[str, typer.Option(help="Stage asked about with --at.")] = "production",
    as_json: JsonOption = False,
) -> None:
    """Show every stage change of a model, or who was in Production at a given time."""
    from flowship.registry import history as model_history
    from flowship.registry import stage_at
    from flowship.registry._types import parse_stage
    from flowship.registry.history import parse_time

    if at is not None:
        when = parse_time(at)
        stage_name = parse_stage(stage)
        holder = stage_at(name, when, stage=stage_name)
        if as_json:
            print_json({"model": name, "at": when, "stage": stage_name, "version": holder})
        elif holder is None:
            sys.stdout.write(f"No version of {name} was in {stage_name} at {when.isoformat()}.\n")
        else:
            sys.stdout.write(
                f"{name} version {holder} was in {stage_name} at {when.isoformat()}.\n"
            )
        return
    events = model_history(name)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        say(f"No stage changes recorded for {name} yet.")
    print_table(
        f"History of {name}",
        ["#", "time (UTC)", "version", "change", "action", "actor", "gates", "reason"],
        [
            (
                e.id,
                e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                e.version,
                f"{e.from_stage} -> {e.to_stage}" if e.from_stage != e.to_stage else "",
                e.action + (" (forced)" if e.forced else ""),
                e.actor,
                _gate_summary(e.gates),
                e.reason,
            )
            for e in events
        ],
    )


def _gate_summary(gates: list[dict[str, Any]] | None) -> str:
    if not gates:
        return ""
    passed = sum(1 for g in gates if g.get("passed"))
    return f"{passed}/{len(gates)} passed"
