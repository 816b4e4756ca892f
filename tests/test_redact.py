"""Secrets never leave: the one redaction rule, and every place that shows URLs."""

from __future__ import annotations

import json
import logging

import pytest

from flowship.redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("postgresql+psycopg://alice:s3cret@db:5432/x", "postgresql+psycopg://alice:***@db:5432/x"),
        ("http://u:p%40ss@mlflow.internal/", "http://u:***@mlflow.internal/"),
        ("failed on https://tok:abc@h/x and http://b:c@d", "failed on https://tok:***@h/x and http://b:***@d"),
        ("mssql://u@h/db?password=hunter2&x=1", "mssql://u@h/db?password=***&x=1"),
        ("https://acct.blob/c?sv=1&sig=AbC%2Fd", "https://acct.blob/c?sv=1&sig=***"),
        ("http://127.0.0.1:5000/path@x", "http://127.0.0.1:5000/path@x"),  # a port, not a password
        ("sqlite:////tmp/a/mlflow.db", "sqlite:////tmp/a/mlflow.db"),
        ("plain text", "plain text"),
    ],
)  # fmt: skip
def test_redact(text, want):
    assert redact(text) == want


def test_log_records_are_redacted_with_their_tracebacks():
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "store %s", ("http://a:pw@h",), None
    )
    try:
        raise RuntimeError("cannot reach postgresql://a:pw@h/db")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2" not in text and "http://a:***@h" in text and "postgresql://a:***@h" in text


def test_info_redacts_every_url(cli, monkeypatch):
    from flowship.config import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://bob:hunter2@mlflow.example.com")
    monkeypatch.setenv("FLOWSHIP_DATABASE_URL", "postgresql+psycopg://u:secret@db:5432/x")
    get_settings.cache_clear()
    result = cli("info", "--json")
    assert "hunter2" not in result.stdout and "secret" not in result.stdout
    assert json.loads(result.stdout)["tracking_uri"] == "https://bob:***@mlflow.example.com"


def test_cli_errors_are_redacted(cli, monkeypatch):
    from flowship.config import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:hunter2@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    get_settings.cache_clear()
    result = cli("serve", "models:/m@production")
    assert result.exit_code != 0
    assert "hunter2" not in result.stderr, result.stderr
    assert "http://bob:***@127.0.0.1:9" in result.stderr


def test_server_status_and_errors_are_redacted(monkeypatch):
    """GET /flowship and a prediction's error while the registry is unreachable."""
    import asyncio

    import httpx

    from flowship.config import get_settings
    from flowship.serving import ServeConfig, create_app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:hunter2@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    get_settings.cache_clear()
    app = create_app(ServeConfig(ref="models:/m@production"))
    app.holder.check()  # the follow loop's first attempt: the registry cannot be reached
    assert app.holder.last_error and "hunter2" in app.holder.last_error  # kept in memory

    async def main() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            info = await http.get("/flowship")
            scored = await http.post("/invocations", json={"inputs": {"a": [1]}})
        return info, scored

    info, scored = asyncio.run(main())
    assert "hunter2" not in info.text and "bob:***@" in info.text
    assert scored.status_code == 503 and "hunter2" not in scored.text
