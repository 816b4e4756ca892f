"""``flowship schedule``: run job files on cron schedules in one long-lived process, or
export them as Kubernetes CronJobs for production scheduling.

A job file is dispatched on its ``kind:``. Each kind names the function that runs a
file and the CLI command that runs it in a container; a new kind is one line in
``KINDS``.

Missed ticks are not replayed: when a run outlasts its interval the next run starts at
the next tick after it ends, so runs never pile up or overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowship.errors import ConfigError, FlowshipError

log = logging.getLogger(__name__)


def _run_score(path: Path) -> Any:
    from flowship.batch import load_job, run_job

    return run_job(load_job(path))


def _run_monitor(path: Path) -> Any:
    from flowship.monitoring import run_monitor_file

    return run_monitor_file(path)


@dataclass(frozen=True)
class Kind:
    run: Callable[[Path], Any]
    command: tuple[str, ...]
    """How a container runs a file of this kind (the file's path is appended)."""


KINDS: dict[str, Kind] = {
    "score": Kind(_run_score, ("flowship", "score")),
    "monitor": Kind(_run_monitor, ("flowship", "monitor", "run")),
}


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str
    cron: str


def _kind_of(path: Path, data: dict[str, Any]) -> str:
    kind = data.get("kind", "score")
    if kind not in KINDS:
        raise ConfigError(
            path, f"unknown kind {kind!r}", f"Use one of: {', '.join(sorted(KINDS))}."
        )
    return str(kind)


def check_cron(expression: str, *, source: object = "--cron") -> str:
    from croniter import croniter

    expression = " ".join(str(expression).split())
    if not expression or len(expression) > 200 or not croniter.is_valid(expression):
        raise ConfigError(
            source,
            f"{expression!r} is not a valid cron expression",
            "Use five fields (minute hour day month weekday), e.g. '0 6 * * *' for 06:00 "
            "UTC daily; a sixth field counts seconds.",
        )
    return expression


def plan_entries(paths: list[Path], *, cron: str | None) -> list[Entry]:
    """Read and validate every file now, so a typo fails at start, not at 06:00."""
    from flowship.batch.spec import read_job_file

    if not paths:
        raise ConfigError("schedule", "no job file given", "Pass at least one JOB.yaml.")
    entries = []
    for path in paths:
        data = read_job_file(path)
        kind = _kind_of(path, data)
        expression = cron or data.get("schedule")
        if not expression:
            raise ConfigError(path, "no schedule", "Pass --cron '0 6 * * *' or set schedule:.")
        if kind == "score":
            from flowship.batch.spec import load_job

            load_job(path)  # every field checked before the first tick
        entries.append(Entry(path, kind, check_cron(expression, source=path)))
    return entries


def _next(cron: str, after: datetime) -> datetime:
    from croniter import croniter

    return croniter(cron, after).get_next(datetime)


def run_schedule(
    entries: list[Entry],
    *,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    on_result: Callable[[Entry, bool, str], None] | None = None,
) -> int:
    """Run ``entries`` on their schedules (times in UTC) until ``stop`` is set or
    ``max_runs`` runs have happened; returns the number of runs. A failing run is
    reported and the schedule goes on."""
    stop = stop or threading.Event()
    now = datetime.now(UTC)
    due = {i: _next(e.cron, now) for i, e in enumerate(entries)}
    runs = 0
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        index = min(due, key=due.__getitem__)
        wait = (due[index] - datetime.now(UTC)).total_seconds()
        if wait > 0:
            stop.wait(min(wait, 60.0))  # wake at least each minute: clocks can jump
            continue
        entry = entries[index]
        started = time.monotonic()
        try:
            result = KINDS[entry.kind].run(entry.path)
            ok, detail = True, _describe(result)
        except FlowshipError as error:
            ok, detail = False, str(error)
        except Exception as error:  # a scheduler must outlive one bad run
            log.exception("Scheduled run of %s crashed", entry.path)
            ok, detail = False, f"unexpected {type(error).__name__}: {error}"
        runs += 1
        log.info(
            "%s %s in %.1fs: %s",
            entry.path,
            "ok" if ok else "FAILED",
            time.monotonic() - started,
            detail,
        )
        if on_result is not None:
            on_result(entry, ok, detail)
        due[index] = _next(entry.cron, datetime.now(UTC))
    return runs


def _describe(result: Any) -> str:
    if hasattr(result, "rows_out"):
        return f"run {result.run_id}: {result.rows_out:,} of {result.rows_in:,} rows scored"
    return str(getattr(result, "status", "done"))


# The user flowship's images run as (packaging/templates/Dockerfile) and the hardening
# every flowship workload gets.
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def cronjob_manifest(
    entry: Entry,
    *,
    image: str,
    name: str | None = None,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    secret: str | None = None,
) -> str:
    """A ConfigMap holding the job file and a CronJob that runs it (YAML, two documents).
    ``concurrencyPolicy: Forbid`` keeps one run at a time; the schedule is UTC. A job file
    or ``env`` value holding a credential is refused: ConfigMaps and env values are plain
    text; credentials come from ``secret``. The container runs as a non-root user on a
    read-only root file system with a writable /tmp, like flowship's model servers."""
    import re

    import yaml

    from flowship.batch.spec import read_job_file
    from flowship.packaging.credentials import refuse_credentials

    refuse_credentials(f"The job file {entry.path}", read_job_file(entry.path))
    refuse_credentials("--env", env or {})
    if len(entry.cron.split()) != 5:
        raise ConfigError(
            entry.path,
            f"Kubernetes cron schedules have five fields, got {entry.cron!r}",
            "Drop the seconds field.",
        )
    base = name or entry.path.stem
    slug = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:52] or "flowship-job"
    metadata: dict[str, Any] = {"name": slug, "labels": {"app.kubernetes.io/name": "flowship"}}
    if namespace:
        metadata["namespace"] = namespace
    container: dict[str, Any] = {
        "name": "job",
        "image": image,
        "command": [*KINDS[entry.kind].command, f"/etc/flowship/{entry.path.name}"],
        "volumeMounts": [
            {"name": "job", "mountPath": "/etc/flowship", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "env": [{"name": "FLOWSHIP_HOME", "value": "/tmp/flowship"}],
        "securityContext": CONTAINER_SECURITY,
    }
    if env:
        container["env"] += [{"name": k, "value": v} for k, v in sorted(env.items())]
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**metadata, "name": f"{slug}-job"},
        "data": {entry.path.name: entry.path.read_text(encoding="utf-8")},
    }
    cron_job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": entry.cron,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 1,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": POD_SECURITY,
                            "containers": [container],
                            "volumes": [
                                {"name": "job", "configMap": {"name": f"{slug}-job"}},
                                {"name": "tmp", "emptyDir": {}},
                            ],
                        }
                    },
                }
            },
        },
    }
    return yaml.safe_dump_all([config_map, cron_job], sort_keys=False)
