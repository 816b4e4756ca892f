"""``flowship export onnx``: a model version as an ONNX file to embed in an application."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table, say

export = typer.Typer(
    name="export", help="Export a model version for use outside flowship.", no_args_is_help=True
)
app.add_typer(export, name="export")


@export.command("onnx")
def onnx(
    ref: Annotated[str, typer.Argument(help="models:/NAME@alias, models:/NAME/3, a dir, ...")],
    out: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    opset: Annotated[
        int | None, typer.Option("--opset", help="Newest ONNX opset the graph may use [newest].")
    ] = None,
    float32: Annotated[
        bool, typer.Option("--float32", help="A float32 graph (runtimes without doubles).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Convert a scikit-learn model to ONNX, check it reproduces the native model within
    1e-5 (input example, attached baseline and generated rows), and write it with the
    model's name, version, run id and signature in its metadata. Exit 1 when it does not."""
    from flowship.packaging.onnx_file import export_onnx

    result = export_onnx(ref, out, opset=opset, float32=float32)
    if as_json:
        print_json(vars(result))  # paths print as strings
        return
    print_table(
        None,
        ["", ""],
        [
            ["file", result.path],
            ["model", f"{result.model_name or '-'} version {result.model_version or '-'}"],
            ["input", f"{result.dtype} matrix, opset {result.opset}"],
            ["parity", f"max difference {result.max_gap:.2g} on {result.rows} rows"],
        ],
    )
    say("The file's metadata names the model (flowship.* keys).")
