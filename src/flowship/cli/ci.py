"""``flowship ci init`` and ``flowship smoke-test``: the CI/CD pipeline and its check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table, say

ci = typer.Typer(name="ci", help="CI/CD pipelines for a model.", no_args_is_help=True)
app.add_typer(ci, name="ci")


@ci.command("init")
def init(
    model: Annotated[str, typer.Option("--model", help="Registered model name.")],
    provider: Annotated[str, typer.Option("--provider", help="CI provider: github.")] = "github",
    out: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the workflow file.")
    ] = Path(".github/workflows"),
    branch: Annotated[str, typer.Option("--branch", help="Branch whose pushes deploy.")] = "main",
    train_command: Annotated[
        str, typer.Option("--train-command", help="Your training command.")
    ] = "python train.py",
    model_path: Annotated[
        str, typer.Option("--model-path", help="Where training saves the MLflow model.")
    ] = "model",
    requirements: Annotated[
        str, typer.Option("--requirements", help="Your requirements file.")
    ] = "requirements.txt",
    python: Annotated[str, typer.Option("--python", help="Python version.")] = "3.11",
) -> None:
    """Write a workflow: train, register, promote to Staging through the gates, serve and
    smoke-test Staging, promote to Production with --expect-current, notify; and a manual
    rollback job."""
    from flowship.packaging.ci import ci_init

    workflow = ci_init(
        provider,
        out,
        model=model,
        branch=branch,
        train_command=train_command,
        model_path=model_path,
        requirements=requirements,
        python=python,
    )
    say(f"Wrote {workflow.path}. Set the repository secrets it reads: MLFLOW_TRACKING_URI, ")
    say(
        "FLOWSHIP_DATABASE_URL, and optionally MLFLOW_TRACKING_USERNAME/PASSWORD, FLOWSHIP_WEBHOOK."
    )


@app.command("smoke-test")
def smoke_test(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:5000.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model name the server must serve.")
    ] = None,
    example: Annotated[
        Path | None, typer.Option("--example", help="An /invocations JSON body to send.")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for readiness.")] = 60,
    requests: Annotated[int, typer.Option("--requests", help="Requests timed.")] = 20,
    max_p95_ms: Annotated[
        float, typer.Option("--max-p95-ms", help="Latency budget (95th percentile).")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a running model server: readiness, metadata, predictions for the served
    version's input example, latency. Exit 1 when a check fails."""
    from flowship.errors import CheckFailed
    from flowship.packaging.smoke import smoke_test as run

    result = run(
        url, model=model, example=example, wait_s=wait, requests=requests, max_p95_ms=max_p95_ms
    )
    if as_json:
        print_json(result.to_dict())
    else:
        rows = [["pass" if c.passed else "FAIL", c.name, c.detail] for c in result.checks]
        print_table(None, ["result", "check", "detail"], rows)
    if not result.passed:
        failed = next(c for c in result.checks if not c.passed)
        raise CheckFailed(
            f"Smoke test of {result.url} failed at {failed.name}: {failed.detail}.",
            "Look at the server's log; nothing after that check was run.",
        )
