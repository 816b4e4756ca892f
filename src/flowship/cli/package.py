"""``flowship build-image`` and ``flowship k8s``: a container build context and the
Kubernetes manifests that run it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, say
from flowship.packaging.k8s import PROMETHEUS

RefArg = Annotated[str, typer.Argument(help="models:/NAME@alias, models:/NAME/3, a dir, ...")]
OutDir = Annotated[
    Path, typer.Option("--output", "-o", help="Folder to write (new, empty, or flowship's).")
]
OutputMode = Annotated[
    str, typer.Option("--output-mode", help="predict (labels/values) or proba [predict].")
]


@app.command("build-image")
def build_image(
    ref: RefArg,
    out: OutDir,
    output: OutputMode = "predict",
    image: Annotated[
        str | None, typer.Option("--image", help="Image tag to suggest [name:version].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a container build context: Dockerfile serving the model on port 8080 with
    its files baked in, .dockerignore and pinned requirements."""
    from flowship.packaging.image import build_context

    context = build_context(ref, out, output=output, image=image)
    if as_json:
        print_json(vars(context) | {"build_command": context.build_command})
        return
    say(f"Wrote the build context for {context.image} to {context.path}.")
    if context.pinned_here:
        say(f"Pinned to the versions installed here: {', '.join(context.pinned_here)}.")
    typer.echo(context.build_command)


@app.command("k8s")
def k8s(
    out: OutDir,
    ref: Annotated[
        str | None, typer.Argument(help="models:/NAME@alias, models:/NAME/3, a dir, ...")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            help="A recorded deployment (flowship deployment apply) instead of REF; also "
            "writes its traffic for KServe, Argo Rollouts and Seldon Core 2.",
        ),
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Container image [name:version, as build-image].")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Workload name [model name].")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace.")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Minimum replicas [2].")] = 2,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="HPA maximum [4 x replicas].")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            help="A Secret whose keys (MLFLOW_TRACKING_URI, ...) to use; needed by --deployment.",
        ),
    ] = None,
    storage_secret: Annotated[
        str | None,
        typer.Option(
            "--storage-secret",
            help="--deployment: the Secret with the rclone remote of a private bucket, for "
            "the Seldon Models (spec.secretName).",
        ),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE setting for the ConfigMap.")
    ] = None,
    jobs: Annotated[
        list[Path] | None, typer.Option("--job", help="A batch job file to run as a CronJob.")
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Schedule for --job files [their schedule:].")
    ] = None,
    prometheus: Annotated[
        str,
        typer.Option("--prometheus", help="Prometheus URL for the Argo AnalysisTemplate."),
    ] = PROMETHEUS,
    max_error_rate: Annotated[
        float | None,
        typer.Option(
            "--max-error-rate", help="Argo analysis: the canary's largest 5xx share [0.01]."
        ),
    ] = None,
    max_p99: Annotated[
        str | None,
        typer.Option("--max-p99", help="Argo analysis: the canary's largest p99 latency [1s]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write Kubernetes manifests serving the model (or --deployment): Deployment,
    Service, HPA, PDB, ConfigMap, CronJobs for --job files, and kustomization.yaml."""
    from flowship.cli._options import env_pairs
    from flowship.packaging.k8s import k8s_manifests

    result = k8s_manifests(
        ref,
        out,
        deployment=deployment,
        image=image,
        name=name,
        namespace=namespace,
        replicas=replicas,
        max_replicas=max_replicas,
        secret=secret,
        env=env_pairs(env),
        jobs=jobs,
        cron=cron,
        prometheus=prometheus,
        max_error_rate=max_error_rate,
        max_p99=max_p99,
        storage_secret=storage_secret,
    )
    for warning in result.warnings:
        say(f"warning: {warning}")
    if as_json:
        print_json(vars(result))
        return
    say(f"Wrote {len(result.files)} manifests for {result.app} ({result.image}) to {result.path}.")
    targets = sorted({f.split("/")[0] for f in result.files if "/" in f})
    if targets:
        say(
            f"For a mesh or an operator instead of flowship's router: {', '.join(targets)} "
            "(apply each folder's numbered files in order; see docs/packaging.md)."
        )
    typer.echo(f"kubectl apply -k {result.path}")
