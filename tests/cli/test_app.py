import json
import subprocess
import sys


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
