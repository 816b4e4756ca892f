"""Fixtures shared by every test: an isolated FLOWSHIP_HOME with a real MLflow store,
the machine's real PostgreSQL, and the CLI run in-process with its exit code."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._caches import reset_caches

PG_ADMIN_URL = os.environ.get("FLOWSHIP_TEST_PG", "postgresql://127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def flowship_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own FLOWSHIP_HOME (MLflow store, state database, tables)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FLOWSHIP_HOME", str(home))
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "FLOWSHIP_DATABASE_URL",
        "FLOWSHIP_TABLES_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLOWSHIP_ACTOR", "tester")
    # flowship no longer points MLflow's process default at its store (a host program
    # keeps its own): the tests' direct MLflow calls name the same store this way.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    reset_caches()
    yield home
    reset_caches()


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the machine's server, set as flowship's
    state database for the test and dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"flowship_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://127.0.0.1:5432/{name}"
    monkeypatch.setenv("FLOWSHIP_DATABASE_URL", url)
    reset_caches()
    yield url
    reset_caches()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``flowship ARGS...`` in-process; returns exit code, stdout and stderr."""
    from flowship.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    """Headless chromium (selenium) that logs its network requests, for the HTML tests."""
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "chromium and chromium-driver are not installed (make test installs them as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()
