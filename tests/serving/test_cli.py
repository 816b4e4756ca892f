"""``flowship serve`` refuses bad arguments before starting anything."""

from __future__ import annotations

import socket

import pytest


def test_no_ref(cli):
    result = cli("serve")
    assert result.exit_code == 2
    assert "Nothing to serve: give a model ref or --config." in result.stderr


def test_unknown_model(cli):
    result = cli("serve", "models:/Nope@production")
    assert result.exit_code == 2
    assert "Model 'Nope' is not registered." in result.stderr


def test_malformed_ref(cli):
    result = cli("serve", "models:/")
    assert result.exit_code == 2 and "Malformed model reference" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "70000"], "option '--port': Input should be less than or equal to 65535"),
        (["--output", "probs"], "option '--output': Input should be 'predict' or 'proba'"),
        (["--workers", "0"], "option '--workers': Input should be greater than or equal to 1"),
        (["--max-body-bytes", "5"], "option '--max-body-bytes': Input should be greater"),
    ],
)
def test_bad_options(cli, args, needle):
    result = cli("serve", "models:/churn@production", *args)
    assert result.exit_code == 2
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_bad_config_file(cli, tmp_path):
    path = tmp_path / "deployment.yaml"
    path.write_text("ref: models:/churn@production\nbatch: 3\n")
    result = cli("serve", "--config", str(path))
    assert result.exit_code == 2
    assert f"{path}: unknown field 'batch'\n" in result.stderr
    assert "Known settings:" in result.stderr
    result = cli("serve", "--config", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "file not found" in result.stderr


def test_port_in_use(cli, serving_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", serving_store.uri)
    from tests._caches import reset_caches

    reset_caches()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "models:/churn@production", "--port", str(port))
    assert result.exit_code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
