from __future__ import annotations

import threading

import pytest
import yaml

from flowship.errors import ConfigError
from flowship.schedule import KINDS, cronjob_manifest, plan_entries, run_schedule
from flowship.store.runs import list_runs


@pytest.fixture
def job_file(churn, small_input, tmp_path):
    path = tmp_path / "daily-churn.yaml"
    path.write_text(
        "model: models:/Churn@production\nid: customer_id\nincremental: true\n"
        f"input: {small_input}\noutput: {tmp_path / 'out'}\n"
    )
    return path


def test_runs_a_score_job_on_each_tick(job_file):
    entries = plan_entries([job_file], cron="* * * * * */1")
    results = []
    count = run_schedule(entries, max_runs=2, on_result=lambda e, ok, d: results.append((ok, d)))
    assert count == 2
    assert [ok for ok, _ in results] == [True, True]
    assert "1,000 of 1,000 rows scored" in results[0][1]
    assert "0 of 1,000 rows scored" in results[1][1]
    assert len(list_runs()) == 2


def test_a_failing_run_does_not_stop_the_schedule(churn, tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        f"model: models:/Churn/1\nid: customer_id\ninput: {tmp_path / 'gone.parquet'}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    results = []
    run_schedule(plan_entries([path], cron="* * * * * *"), max_runs=2,
                 on_result=lambda e, ok, d: results.append((ok, d)))  # fmt: skip
    assert [ok for ok, _ in results] == [False, False]
    assert "does not exist" in results[0][1]


def test_stop_event_ends_the_loop(job_file):
    stop = threading.Event()
    stop.set()
    assert run_schedule(plan_entries([job_file], cron="0 6 * * *"), stop=stop) == 0


def test_monitor_files_go_to_the_monitoring_runner(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("kind: monitor\nname: m\n")
    [entry] = plan_entries([path], cron="* * * * * *")
    assert entry.kind == "monitor" and KINDS["monitor"].command[-1] == "run"
    results = []
    run_schedule([entry], max_runs=1, on_result=lambda e, ok, d: results.append((ok, d)))
    assert results and results[0][0] is False  # the monitor spec itself refused the file


@pytest.mark.parametrize(
    ("content", "cron", "message"),
    [
        ("kind: train\n", "* * * * *", "unknown kind 'train'"),
        ("model: m\nid: x\ninput: a\noutput: b\n", None, "no schedule"),
        ("model: m\nid: x\ninput: a\noutput: b\n", "every day", "not a valid cron expression"),
        ("model: m\nid: x\ninput: a\noutput: b\n", "61 * * * *", "not a valid cron"),
        ("model: m\ninput: a\noutput: b\n", "* * * * *", "field 'id' is required"),
    ],
)
def test_bad_schedules_fail_at_start(tmp_path, content, cron, message):
    path = tmp_path / "job.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        plan_entries([path], cron=cron)


def test_schedule_from_the_file(job_file):
    job_file.write_text(job_file.read_text() + "schedule: '30 5 * * 1-5'\n")
    [entry] = plan_entries([job_file], cron=None)
    assert entry.cron == "30 5 * * 1-5"


def test_cronjob_manifest(job_file):
    [entry] = plan_entries([job_file], cron="0 6 * * *")
    docs = list(yaml.safe_load_all(cronjob_manifest(
        entry, image="ghcr.io/acme/flowship:0.1", namespace="ml",
        env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, secret="flowship-db",
    )))  # fmt: skip
    config_map, cron_job = docs
    assert config_map["kind"] == "ConfigMap"
    assert "models:/Churn@production" in config_map["data"]["daily-churn.yaml"]
    assert cron_job["kind"] == "CronJob" and cron_job["apiVersion"] == "batch/v1"
    spec = cron_job["spec"]
    assert spec["schedule"] == "0 6 * * *" and spec["concurrencyPolicy"] == "Forbid"
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["flowship", "score", "/etc/flowship/daily-churn.yaml"]
    assert container["image"] == "ghcr.io/acme/flowship:0.1"
    assert container["envFrom"] == [{"secretRef": {"name": "flowship-db"}}]
    assert cron_job["metadata"] == {
        "name": "daily-churn", "labels": {"app.kubernetes.io/name": "flowship"}, "namespace": "ml"
    }  # fmt: skip
    seconds = plan_entries([job_file], cron="* * * * * *")[0]
    with pytest.raises(ConfigError, match="five fields"):
        cronjob_manifest(seconds, image="x")


def test_cli_schedule_and_export(job_file, cli):
    ran = cli("schedule", job_file, "--cron", "* * * * * *", "--max-runs", "1")
    assert ran.exit_code == 0, ran.stderr
    assert "ok " in ran.stderr and "1,000 of 1,000 rows scored" in ran.stderr
    exported = cli("schedule", job_file, "--cron", "0 6 * * *", "--export-cronjob",
                   "--image", "img:1", "--env", "A=b")  # fmt: skip
    assert exported.exit_code == 0
    docs = list(yaml.safe_load_all(exported.stdout))
    assert docs[1]["spec"]["schedule"] == "0 6 * * *"
    bad_env = cli("schedule", job_file, "--cron", "0 6 * * *", "--export-cronjob", "--env", "x")
    assert bad_env.exit_code == 2 and "is not KEY=VALUE" in bad_env.stderr
    bad_cron = cli("schedule", job_file, "--cron", "whenever")
    assert bad_cron.exit_code == 2 and "not a valid cron expression" in bad_cron.stderr
