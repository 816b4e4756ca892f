"""Start ``flowship serve --deployment NAME`` as a real subprocess; read the log table."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.serving._server import Server, free_port, server_env


def deployment_server(name: str, *options: str, home: Path, store, log: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-c", "from flowship.cli import main; main()", "serve",
            "--deployment", name, "--port", str(port), *options]  # fmt: skip
    return Server(argv, env=server_env(home, store.uri), log=log, port=port)


def read_log(uri: str):
    """The prediction log as a pandas frame (through deltalake, as a user would)."""
    from deltalake import DeltaTable

    return DeltaTable(str(uri)).to_pandas()


def apply(cli, path: Path, *args: str) -> None:
    result = cli("deployment", "apply", path, *args)
    assert result.exit_code == 0, result.stderr
