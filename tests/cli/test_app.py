import json
import subprocess
import sys
from pathlib import Path


def test_info_shows_stores_under_home(cli, flowship_home):
    result = cli("info", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tracking_uri"] == f"sqlite:///{flowship_home.resolve()}/mlflow.db"
    assert data["tables_uri"] == str(flowship_home.resolve() / "tables")


def test_env_overrides_win(cli, monkeypatch, tmp_path):
    from flowship.config import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    monkeypatch.setenv("FLOWSHIP_DATABASE_URL", "postgresql+psycopg://u:secret@db:5432/x")
    get_settings.cache_clear()
    data = json.loads(cli("info", "--json").stdout)
    assert data["tracking_uri"] == "http://127.0.0.1:1"
    assert "secret" not in data["database_url"]


def test_unknown_command_is_a_usage_error(cli):
    result = cli("no-such-command")
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.stderr


def test_help_is_fast_and_does_not_import_mlflow():
    code = "import sys; from flowship.cli import app; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


FLOWSHIP = str(Path(sys.executable).with_name("flowship"))


def test_console_script_flushes_output_and_keeps_exit_codes(flowship_home):
    """The console script ends with os._exit: what it printed must still arrive whole,
    through a pipe, and its exit codes must be the command's."""
    done = subprocess.run([FLOWSHIP, "info", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables_uri"] == str(flowship_home.resolve() / "tables")
    refused = subprocess.run([FLOWSHIP, "versions", "NoSuchModel"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "error: Model 'NoSuchModel' is not registered.\n" in refused.stderr
    usage = subprocess.run([FLOWSHIP, "no-such-command"], capture_output=True, text=True)
    assert usage.returncode == 2 and "No such command" in usage.stderr
